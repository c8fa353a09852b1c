// Classifies one CIFAR image with an exported model in ONNX Runtime for
// Node.js.
//
//   NODE_PATH=.ort/node_modules node examples/node/classify.js model.onnx image.u8
const ort = require('onnxruntime-node');
const fs = require('fs');

async function main([modelPath, imagePath]) {
  const session = await ort.InferenceSession.create(modelPath);
  // The metadata holds the class names and the normalisation.
  const meta = session.handler.metadata ? session.handler.metadata.customMetadataMap : undefined;
  const read = (key) => (meta && meta[key]) || readMetadata(modelPath, key);
  const classes = JSON.parse(read('classes'));
  const mean = parseFloats(read('normalization_mean'));
  const std = parseFloats(read('normalization_std'));
  const raw = read('input_layout').includes('raw');

  // 3072 bytes, channel by channel, as CIFAR stores an image.
  const img = fs.readFileSync(imagePath);
  if (img.length !== 3072) throw new Error(`${imagePath}: want a 3072-byte CIFAR image`);
  const x = new Float32Array(3072);
  for (let i = 0; i < 3072; i++) {
    const c = Math.floor(i / 1024);
    x[i] = raw ? img[i] / 255 : (img[i] / 255 - mean[c]) / std[c];
  }
  const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, 32, 32]) });
  const logits = out.logits.data;
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  console.log(`${classes[best]} (class ${best}, logit ${logits[best].toFixed(4)})`);
}

// "[0.4914 0.4824 0.4467]" → numbers.
function parseFloats(s) { return s.replace(/[\[\]]/g, '').trim().split(/\s+/).map(Number); }

// readMetadata finds a metadata value in the model file itself: a
// StringStringEntryProto is key then value, each a length-prefixed string.
// (Used when this onnxruntime-node version does not expose custom metadata.)
function readMetadata(path, key) {
  const buf = fs.readFileSync(path);
  const k = Buffer.from(key);
  for (let i = buf.indexOf(k); i >= 0; i = buf.indexOf(k, i + 1)) {
    if (buf[i - 1] !== k.length || buf[i - 2] !== 0x0a) continue;
    let j = i + k.length;
    if (buf[j] !== 0x12) continue;
    let len = 0, shift = 0;
    for (j++; ; j++) { len |= (buf[j] & 0x7f) << shift; shift += 7; if (!(buf[j] & 0x80)) break; }
    return buf.slice(j + 1, j + 1 + len).toString();
  }
  throw new Error(`no ${key} in the model's metadata`);
}

main(process.argv.slice(2)).catch((e) => { console.error(e.message || e); process.exit(1); });

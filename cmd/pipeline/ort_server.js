// A minimal Open Inference Protocol server around ONNX Runtime for
// Node.js, the reference that `pipeline bench serve` measures our server
// against: POST /v2/models/NAME/infer with one FP32 input as binary data
// answers with the softmax of the model's output as "probabilities".
//
//   NODE_PATH=.ort/node_modules node ort_server.js model.onnx [port] [intra-op threads]
const http = require('http');
const ort = require('onnxruntime-node');

async function main([model, port = '0', threads = '0']) {
  const opts = Number(threads) > 0 ? { intraOpNumThreads: Number(threads) } : {};
  const session = await ort.InferenceSession.create(model, opts);
  const [input, output] = [session.inputNames[0], session.outputNames[0]];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => infer(Buffer.concat(chunks), req.headers).then(
      (answer) => { res.setHeader('Content-Type', 'application/json'); res.end(JSON.stringify(answer)); },
      (err) => { res.statusCode = 400; res.end(JSON.stringify({ error: String(err) })); }));
  });
  async function infer(body, headers) {
    const n = Number(headers['inference-header-content-length']);
    const head = JSON.parse(body.subarray(0, n).toString());
    const shape = head.inputs[0].shape;
    const bin = body.subarray(n);
    const x = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length));
    const out = await session.run({ [input]: new ort.Tensor('float32', x, shape) });
    const logits = out[output].data;
    const k = logits.length / shape[0];
    const p = new Array(logits.length);
    for (let i = 0; i < shape[0]; i++) {
      let top = -Infinity, sum = 0;
      for (let j = 0; j < k; j++) top = Math.max(top, logits[i * k + j]);
      for (let j = 0; j < k; j++) sum += (p[i * k + j] = Math.exp(logits[i * k + j] - top));
      for (let j = 0; j < k; j++) p[i * k + j] /= sum;
    }
    return { model_name: 'ort', id: head.id || '', outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [shape[0], k], data: p }] };
  }
  server.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${server.address().port}`));
}

main(process.argv.slice(2)).catch((err) => { console.error(err); process.exit(1); });

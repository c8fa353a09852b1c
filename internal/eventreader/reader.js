// Prints each record of a TensorBoard event file as a JSON line, read by
// the npm packages tfrecord (which checks both CRCs of every record) and
// protobufjs, with the fields of tensorflow.Event and Summary that
// scalars use, as TensorFlow's event.proto and summary.proto number them.
//
//   NODE_PATH=.node/node_modules node reader.js events.out.tfevents...
const tfrecord = require('tfrecord');
const protobuf = require('protobufjs');

const root = protobuf.parse(`
syntax = "proto3";
package tensorflow;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what { string file_version = 3; bytes graph_def = 4; Summary summary = 5; }
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    oneof value { float simple_value = 2; bytes obsolete_old_style_histogram = 3; }
  }
  repeated Value value = 1;
}`).root;
const Event = root.lookupType('tensorflow.Event');

(async () => {
  const r = await tfrecord.RecordReader.create(process.argv[2]);
  for (let rec; (rec = await r.readRecord()) !== null;) {
    console.log(JSON.stringify(Event.toObject(Event.decode(rec), { longs: Number, defaults: true })));
  }
})().catch((e) => { console.error(e); process.exit(1); });

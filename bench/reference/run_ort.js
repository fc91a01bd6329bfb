// run_ort.js - ONNX Runtime's side of the peer comparison (compare.sh): runs
// OUT/image.onnx and OUT/text.onnx from export_reference.py on the stored
// inputs with the given number of intra-op threads, prints the largest
// difference to the reference's embeddings and the time per call at batch 1:
//   peer engine=onnxruntime-1.22.0 tower=image threads=2 ms_min=.. ms_median=.. max_abs=..
// usage: node run_ort.js DIR THREADS [RUNS]   (onnxruntime-node on NODE_PATH)
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not a .npy file');
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').filter(s => s.trim()).map(Number);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(file + ': Fortran order');
  const body = buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length);
  if (descr === '<f4') return { type: 'float32', data: new Float32Array(body), shape };
  if (descr === '<i8') return { type: 'int64', data: new BigInt64Array(body), shape };
  throw new Error(file + ': unsupported dtype ' + descr);
}

async function main() {
  const [dir, threadsArg, runsArg] = process.argv.slice(2);
  if (!dir || !threadsArg) {
    console.error('usage: node run_ort.js DIR THREADS [RUNS]');
    process.exit(2);
  }
  const threads = Number(threadsArg), runs = Number(runsArg || 20);
  const version = require('onnxruntime-node/package.json').version;
  for (const tower of ['image', 'text']) {
    const session = await ort.InferenceSession.create(path.join(dir, tower + '.onnx'), {
      intraOpNumThreads: threads, interOpNumThreads: 1,
      executionMode: 'sequential', graphOptimizationLevel: 'all',
    });
    const x = readNpy(path.join(dir, tower + '_input.npy'));
    const expected = readNpy(path.join(dir, tower + '_expected.npy')).data;
    const feeds = { [session.inputNames[0]]: new ort.Tensor(x.type, x.data, x.shape) };
    let out = (await session.run(feeds))[session.outputNames[0]].data;
    let maxAbs = 0;
    for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(out[i] - expected[i]));
    const times = [];
    for (let r = 0; r < runs; r++) {
      const t0 = process.hrtime.bigint();
      out = await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    console.log(`peer engine=onnxruntime-${version} tower=${tower} threads=${threads} ` +
      `ms_min=${times[0].toFixed(2)} ms_median=${times[runs >> 1].toFixed(2)} max_abs=${maxAbs.toPrecision(3)}`);
    await session.release();
  }
}

main().catch(e => { console.error('run_ort: ' + (e && e.message ? e.message : e)); process.exit(1); });

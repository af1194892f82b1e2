#!/usr/bin/env node
// ONNX Runtime baseline for the design's engine target (engine int8 >= 5x ONNX Runtime f32 and
// >= 3x ONNX Runtime's own int8, same model and threads): times ORT sessions of the npm package
// onnxruntime-node (the only ONNX Runtime build the allowed sources give; scripts/bench.sh ort
// fetches it and runs this, then bench_engine, then the ratios). Benchmark only: no test uses it.
//
//   node benchmarks/bench_ort.mjs [--threads 1,2] [--only NAME,...] [--dtype f32,int8,...]
//                                 [--node-modules DIR] [--dump-f32 DIR]
//   node benchmarks/bench_ort.mjs --ratios ORT_LINES ENGINE_LINES
//
// Per model and thread count T, two cases:
//   f32:  the float ONNX model the engine's int8 package was compiled from, at the package's
//         original input shape (manifest input_shapes_original), float inputs in [0, 1).
//   int8: the package's core.onnx (the QDQ int8 graph axcompile wrote, int8 NHWC padded in/out)
//         as it is. ORT's x86 CPU provider fuses DequantizeLinear-op-QuantizeLinear into its
//         own int8 kernels (QLinearConv, QLinearAdd, ... on MLAS) only for uint8 activations;
//         it rewrites int8 activations to uint8 only where a tensor has one reader, so on this
//         graph part of the model runs in float (ResNet-50: 21 of 53 convolutions).
//   int8-u8act: the same quantised graph with every activation in uint8 (zero point + 128,
//         benchmarks/ort_u8_activations.py, made by scripts/bench.sh ort as
//         $AXSTREAM_BENCH_MODELS/ort/NAME/core_u8act.onnx), inputs the same values + 128: ORT's
//         int8 kernels on every quantised node, its best int8 on this model.
// threads=T: one session, intraOpNumThreads T, interOpNumThreads 1, sequential execution,
// graph optimisation "all"; for T > 1 also sessions=T: T one-thread sessions in T processes
// in parallel (ORT's best throughput on T cores, the shape of bench_engine's "int8 cores=T").
// Each case warms up (5 runs and >= 0.5 s), then runs >= AXSTREAM_BENCH_SECONDS (default 3) s.
// A line: inferences/s, p50/p99 wall ms per inference, process CPU ms per inference
// (process.cpuUsage, all threads) and CPU/wall (how many cores the case really kept busy).
// --dump-f32 DIR writes each model's f32 input and ORT's f32 outputs (threads=1) as raw
// little-endian float32 under DIR/NAME/ for `bench_engine --compare-f32 DIR`.
// Before timing, the two int8 forms run once on the same values and a line gives their largest
// output difference in quantisation steps (ORT's float fallback in `int8` rounds differently).
// --ratios reads this script's lines and bench_engine's int8 lines and prints engine int8 over
// ORT f32 and over ORT's cheaper int8 form (least CPU per inference) per model and threads.
// Models: $AXSTREAM_BENCH_MODELS (default $AXSTREAM_DATA_DIR/bench) float/ and pkg/, the real
// ones from $AXSTREAM_DATA_DIR (default ~/.cache/axstream) and its models/, as bench_engine.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const data = process.env.AXSTREAM_DATA_DIR || path.join(process.env.HOME || '/root', '.cache/axstream');
const bench = process.env.AXSTREAM_BENCH_MODELS || path.join(data, 'bench');
const seconds = Number(process.env.AXSTREAM_BENCH_SECONDS) > 0 ? Number(process.env.AXSTREAM_BENCH_SECONDS) : 3;

// name -> [float model, int8 package dir]; the same pairs bench_engine times.
const models = [
  ['resnet50', `${bench}/float/resnet50.onnx`, `${bench}/pkg/resnet50`],
  ['mobilenetv2', `${bench}/float/mobilenetv2.onnx`, `${bench}/pkg/mobilenetv2`],
  ['yolov5s', `${bench}/float/yolov5s.onnx`, `${bench}/pkg/yolov5s`],
  ['yolov8n', `${bench}/float/yolov8n.onnx`, `${bench}/pkg/yolov8n`],
  ['blazeface-front', `${data}/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx`,
    `${data}/models/blazeface-front`],
  ['blazeface-back', `${data}/blazeface/package/ONNX/face_detection_back_256x256_barracuda.onnx`,
    `${data}/models/blazeface-back`],
  ['ppocr-det', `${data}/ocr/package/assets/ch_PP-OCRv4_det_infer.onnx`, `${data}/models/ppocr-det`],
  ['ppocr-rec', `${data}/ocr/package/assets/ch_PP-OCRv4_rec_infer.onnx`, `${data}/models/ppocr-rec`],
];

function usage(to) {
  to.write('usage: bench_ort.mjs [--threads 1,2] [--only NAME,...] [--dtype f32,int8] [--node-modules DIR] ' +
           '[--dump-f32 DIR]\n       bench_ort.mjs --ratios ORT_LINES ENGINE_LINES\n');
}

// A seeded generator (32-bit LCG), so every run feeds the same data.
function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

function loadOrt(nodeModules) {
  const where = path.join(nodeModules, 'onnxruntime-node');
  if (!fs.existsSync(path.join(where, 'package.json')))
    throw new Error(`onnxruntime-node not found in ${nodeModules} (run scripts/bench.sh ort)`);
  return createRequire(import.meta.url)(where);
}

// The inputs of one case: [{name, dtype, dims, data}] from the package's manifest.
function caseInputs(manifest, names, dtype) {
  const shapes = dtype === 'f32' ? manifest.input_shapes_original : manifest.input_shapes;
  const u8 = dtype === 'int8-u8act';
  if (!Array.isArray(shapes) || shapes.length !== names.length)
    throw new Error(`manifest has ${shapes ? shapes.length : 'no'} input shapes for ${names.length} inputs`);
  const random = seeded(7);
  return names.map((name, i) => {
    const dims = shapes[i];
    const count = dims.reduce((a, b) => a * b, 1);
    const data = dtype === 'f32' ? new Float32Array(count) : u8 ? new Uint8Array(count) : new Int8Array(count);
    // int8 and int8-u8act get the same quantised values (u8 = s8 + 128).
    for (let k = 0; k < count; ++k)
      data[k] = dtype === 'f32' ? random() : Math.floor(random() * 256) - (u8 ? 0 : 128);
    return { name, dtype: dtype === 'f32' ? 'float32' : u8 ? 'uint8' : 'int8', dims, data };
  });
}

function sessionOptions(threads) {
  return { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
           graphOptimizationLevel: 'all', logSeverityLevel: 3 };
}

function feedsOf(ort, inputs) {
  const feeds = {};
  for (const t of inputs) feeds[t.name] = new ort.Tensor(t.dtype, t.data, t.dims);
  return feeds;
}

// Warm-up (5 runs and at least 0.5 s), then runs for `secs`; per-run wall ms.
async function timedRuns(session, feeds, secs) {
  const warmUntil = performance.now() + 500;
  for (let i = 0; i < 5 || performance.now() < warmUntil; ++i) await session.run(feeds);
  return async () => {
    const ms = [];
    const until = performance.now() + secs * 1000;
    for (;;) {
      const t0 = performance.now();
      await session.run(feeds);
      const t1 = performance.now();
      ms.push(t1 - t0);
      if (ms.length >= 5 && t1 >= until) break;
    }
    return ms;
  };
}

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function report(label, ms, wallMs, cpu) {
  ms.sort((a, b) => a - b);
  const p = (q) => ms[Math.min(ms.length - 1, Math.floor(ms.length * q))];
  const perSecond = (ms.length * 1000) / wallMs;
  const line = `${'ort'.padEnd(10)} ${label.padEnd(34)} ort ${perSecond.toFixed(2).padStart(8)}/s p50 ` +
    `${p(0.5).toFixed(2).padStart(8)} ms p99 ${p(0.99).toFixed(2).padStart(8)} ms (cpu ` +
    `${(cpu / ms.length).toFixed(2)} ms/inf, cpu/wall ${(cpu / wallMs).toFixed(2)})`;
  console.log(line);
}

function skip(label, why) {
  console.log(`${'ort'.padEnd(10)} ${label.padEnd(34)} SKIPPED: ${why.split('\n')[0].slice(0, 160)}`);
}

// One session with `threads` intra-op threads, in this thread.
async function oneSession(ort, modelPath, inputs, threads) {
  const session = await ort.InferenceSession.create(modelPath, sessionOptions(threads));
  const feeds = feedsOf(ort, inputs);
  const measure = await timedRuns(session, feeds, seconds);
  const cpu0 = cpuMs();
  const t0 = performance.now();
  const ms = await measure();
  const wall = performance.now() - t0;
  const cpu = cpuMs() - cpu0;
  await session.release();
  return { ms, wall, cpu };
}

// `count` one-thread sessions, each in its own child process (onnxruntime-node 1.20.1 in
// worker threads crashed under Debian 12's node 18), timed together: all are built and warmed
// up before any starts its timed runs. CPU is the children's, each over its own timed runs.
async function parallelSessions(modelPath, inputs, count, nodeModules) {
  const children = [];
  for (let i = 0; i < count; ++i)
    children.push(fork(fileURLToPath(import.meta.url), ['--child'], { serialization: 'advanced' }));
  const next = (child) => new Promise((resolve, reject) => {
    const onExit = (code) => reject(new Error(`session process exited with ${code}`));
    child.once('exit', onExit);
    child.once('message', (m) => {
      child.off('exit', onExit);
      resolve(m);
    });
  });
  try {
    const ready = children.map(next);
    for (const c of children) c.send({ modelPath, inputs, nodeModules, seconds });
    const failed = (await Promise.all(ready)).find((m) => m.error);
    if (failed) throw new Error(failed.error);
    const t0 = performance.now();
    const done = children.map(next);
    for (const c of children) c.send('go');
    const results = await Promise.all(done);
    const wall = performance.now() - t0;
    const err = results.find((m) => m.error);
    if (err) throw new Error(err.error);
    return { ms: results.flatMap((m) => m.ms), wall, cpu: results.reduce((a, m) => a + m.cpu, 0) };
  } finally {
    for (const c of children) c.kill();
  }
}

async function childMain() {
  const message = () => new Promise((resolve) => process.once('message', resolve));
  const { modelPath, inputs, nodeModules, seconds: secs } = await message();
  try {
    const ort = loadOrt(nodeModules);
    const session = await ort.InferenceSession.create(modelPath, sessionOptions(1));
    const measure = await timedRuns(session, feedsOf(ort, inputs), secs);
    process.send({ ready: true });
    await message();
    const cpu0 = cpuMs();
    const ms = await measure();
    process.send({ ms, cpu: cpuMs() - cpu0 });
    await session.release();
  } catch (e) {
    process.send({ error: String(e && e.message ? e.message : e) });
  }
  process.disconnect();
}

// The int8 and int8-u8act outputs of the same quantised values: the largest difference in
// quantisation steps over all outputs (u8 = s8 + 128), with ORT's graph optimisation disabled
// (every node as written: 0 when ort_u8_activations.py changed nothing but the encoding) and
// as timed ("all": ORT's fused int8 kernels round differently from its float fallbacks).
function agreementLine(name, outputs) {
  const diff = (level) => {
    let most = 0;
    let count = 0;
    outputs.int8[level].forEach((s8, i) => {
      const u8 = outputs['int8-u8act'][level][i];
      if (!u8 || u8.length !== s8.length) throw new Error(`output ${i}: the two int8 forms differ in size`);
      for (let k = 0; k < s8.length; ++k) most = Math.max(most, Math.abs(u8[k] - 128 - s8[k]));
      count += s8.length;
    });
    return [most, count];
  };
  const [plain, count] = diff('disabled');
  const [fused] = diff('all');
  console.log(`${'agree'.padEnd(10)} ${`${name} int8 vs int8-u8act`.padEnd(34)} ORT outputs of the same ` +
              `quantised input, max diff in steps over ${count} values: ${plain} unoptimised, ${fused} as timed`);
}

function writeF32Dump(dir, name, inputs, outputs, outputNames) {
  const where = path.join(dir, name);
  fs.mkdirSync(where, { recursive: true });
  const raw = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  inputs.forEach((t, i) => fs.writeFileSync(path.join(where, `input_${i}.f32`), raw(t.data)));
  outputNames.forEach((n, i) => {
    const t = outputs[n];
    if (t.type !== 'float32') throw new Error(`output ${n} is ${t.type}, not float32`);
    fs.writeFileSync(path.join(where, `output_${i}.f32`), raw(t.data));
  });
}

async function benchMain(args) {
  const ort = loadOrt(args.nodeModules);
  console.log(`# ort: onnxruntime-node ${ort.env.versions ? ort.env.versions.common : ''}` +
              ` (${path.join(args.nodeModules, 'onnxruntime-node')}), node ${process.version};` +
              ` ${seconds.toFixed(1)} s per case; threads=T: one session, intraOpNumThreads T,` +
              ' interOpNumThreads 1, sequential, graph optimisation all; sessions=T: T one-thread' +
              ' sessions in parallel processes; cpu = process CPU per inference');
  for (const [name, floatPath, pkg] of models) {
    if (args.only.length && !args.only.includes(name)) continue;
    let manifest;
    try {
      manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'manifest.json'), 'utf8'));
    } catch (e) {
      skip(`${name}`, `${pkg}/manifest.json: ${e.message}`);
      continue;
    }
    const corePath = path.join(pkg, manifest.quantized_model_file || 'core.onnx');
    const u8Path = path.join(bench, 'ort', name, 'core_u8act.onnx');
    const int8Outputs = {};  // dtype -> the first output of one run, for the agreement line
    for (const [dtype, modelPath] of [['f32', floatPath], ['int8', corePath], ['int8-u8act', u8Path]]) {
      if (!args.dtypes.includes(dtype)) continue;
      if (!fs.existsSync(modelPath)) {
        skip(`${name} ${dtype}`, `${modelPath} missing`);
        continue;
      }
      let inputs;
      try {
        // Input names from a session, shapes from the manifest: the compile-time shape.
        const probe = await ort.InferenceSession.create(modelPath, sessionOptions(1));
        inputs = caseInputs(manifest, probe.inputNames, dtype);
        if (dtype === 'f32' && args.dumpF32) {
          const outputs = await probe.run(feedsOf(ort, inputs));
          writeF32Dump(args.dumpF32, name, inputs, outputs, probe.outputNames);
        } else if (dtype !== 'f32') {
          // Unoptimised (every node as written, no fusion) and as timed.
          const plain = await ort.InferenceSession.create(
              modelPath, { ...sessionOptions(1), graphOptimizationLevel: 'disabled' });
          const unfused = await plain.run(feedsOf(ort, inputs));
          await plain.release();
          const outputs = await probe.run(feedsOf(ort, inputs));
          int8Outputs[dtype] = {
            disabled: probe.outputNames.map((n) => unfused[n].data),
            all: probe.outputNames.map((n) => outputs[n].data),
          };
          if (int8Outputs.int8 && int8Outputs['int8-u8act']) agreementLine(name, int8Outputs);
        }
        await probe.release();
      } catch (e) {
        skip(`${name} ${dtype}`, String(e.message || e));
        continue;
      }
      for (const threads of args.threads) {
        const cases = [[`threads=${threads}`, () => oneSession(ort, modelPath, inputs, threads)]];
        if (threads > 1)
          cases.push([`sessions=${threads}`, () => parallelSessions(modelPath, inputs, threads, args.nodeModules)]);
        for (const [shape, run] of cases) {
          const label = `${name} ${dtype} ${shape}`;
          try {
            const { ms, wall, cpu } = await run();
            report(label, ms, wall, cpu);
          } catch (e) {
            skip(label, String(e.message || e));
          }
        }
      }
    }
  }
}

// --ratios: engine int8 (bench_engine "NAME int8 cores=T") over ORT f32 and ORT int8 on T
// threads, against the ORT case (threads=T or sessions=T; int8 or int8-u8act) with the least CPU
// per inference; both the CPU ratio and the inferences/s ratio are printed.
function ratiosMain(ortFile, engineFile) {
  const ort = new Map();  // "name dtype T" -> [{shape, perSecond, cpu}]
  for (const line of fs.readFileSync(ortFile, 'utf8').split('\n')) {
    const m = line.match(/^ort\s+(\S+) (f32|int8|int8-u8act) (threads|sessions)=(\d+)\s+ort\s+([\d.]+)\/s .*\(cpu ([\d.]+) ms\/inf/);
    if (!m) continue;
    // Both int8 forms compete as "int8": the target is against ORT's best int8.
    const key = `${m[1]} ${m[2] === 'f32' ? 'f32' : 'int8'} ${m[4]}`;
    if (!ort.has(key)) ort.set(key, []);
    ort.get(key).push({ shape: `${m[2]} ${m[3]}=${m[4]}`, perSecond: Number(m[5]), cpu: Number(m[6]) });
  }
  const engine = [];
  for (const line of fs.readFileSync(engineFile, 'utf8').split('\n')) {
    const m = line.match(/^engine\s+(\S+) int8 cores=(\d+)\s+ours\s+([\d.]+)\/s .*\(cpu ([\d.]+) ms\/inf\)/);
    if (m) engine.push({ name: m[1], threads: m[2], perSecond: Number(m[3]), cpu: Number(m[4]) });
  }
  console.log('# ratios: engine int8 (N one-core instances) / ONNX Runtime on the same model and ' +
              'thread count, judged on CPU ms per inference (inferences/s ratio in brackets); targets >= 5x f32, >= 3x int8');
  for (const e of engine) {
    const parts = [];
    for (const [dtype, target] of [['f32', 5], ['int8', 3]]) {
      const cands = ort.get(`${e.name} ${dtype} ${e.threads}`);
      if (!cands) continue;
      // The ORT case with the least CPU per inference: on a loaded machine the wall rate says
      // how much of a core a case got, the CPU time what it needed.
      const best = cands.reduce((a, b) => (b.cpu < a.cpu ? b : a));
      const wall = e.perSecond / best.perSecond;
      const cpu = best.cpu / e.cpu;
      parts.push(`ort ${best.shape} cpu ${best.cpu.toFixed(2)} ms/inf: ${cpu.toFixed(2)}x cpu ` +
                 `${cpu >= target ? 'met' : 'NOT met'} >= ${target}x (${wall.toFixed(2)}x inf/s)`);
    }
    if (!parts.length) continue;
    console.log(`${'ratio'.padEnd(10)} ${`${e.name} threads=${e.threads}`.padEnd(34)} engine int8 ` +
                `${e.perSecond.toFixed(2)}/s (cpu ${e.cpu.toFixed(2)} ms/inf) | ${parts.join(' | ')}`);
  }
}

function parseArgs(argv) {
  const args = { threads: [1, 2], only: [], dtypes: ['f32', 'int8', 'int8-u8act'], nodeModules: path.join(data, 'npm/node_modules'), dumpF32: null };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '-h' || a === '--help') {
      usage(process.stdout);
      process.exit(0);
    } else if (a === '--threads') {
      const text = value();
      args.threads = text.split(',').map(Number);
      if (args.threads.some((t) => !Number.isInteger(t) || t < 1))
        throw new Error(`--threads '${text}': expected integers >= 1, e.g. 1,2`);
    } else if (a === '--only') {
      args.only = value().split(',');
      const unknown = args.only.filter((n) => !models.some((m) => m[0] === n));
      if (unknown.length)
        throw new Error(`--only: unknown model ${unknown.join(', ')} (${models.map((m) => m[0]).join(', ')})`);
    } else if (a === '--dtype') {
      args.dtypes = value().split(',');
      if (!args.dtypes.every((d) => ['f32', 'int8', 'int8-u8act'].includes(d)))
        throw new Error(`--dtype '${args.dtypes.join(',')}': expected some of f32,int8,int8-u8act`);
    } else if (a === '--node-modules') {
      args.nodeModules = value();
    } else if (a === '--dump-f32') {
      args.dumpF32 = value();
    } else if (a === '--ratios') {
      args.ratios = [value(), value()];
    } else {
      throw new Error(`unknown argument '${a}'`);
    }
  }
  return args;
}

if (process.argv[2] === '--child') {
  await childMain();
} else {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench_ort: ${e.message}\n`);
    usage(process.stderr);
    process.exit(2);
  }
  try {
    if (args.ratios) ratiosMain(...args.ratios);
    else await benchMain(args);
  } catch (e) {
    process.stderr.write(`bench_ort: ${e.message}\n`);
    process.exit(1);
  }
}

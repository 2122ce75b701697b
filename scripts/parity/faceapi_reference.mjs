// Reference outputs of face-api's FaceExpressionNet under node, for the PyTorch parity fixture.
//
// How to run (offline apart from the npm registry; no native tfjs-node binary is needed):
//
//   mkdir -p /tmp/faceapi_parity
//   cp scripts/parity/package.json /tmp/faceapi_parity/
//   (cd /tmp/faceapi_parity && npm install --no-audit --no-fund)
//   node scripts/parity/faceapi_reference.mjs --deps /tmp/faceapi_parity \
//       --out /tmp/faceapi_parity/faceapi_reference.json [--backend cpu|wasm] [--model-dir DIR]
//   .venv/bin/python scripts/parity/faceapi_fixture.py /tmp/faceapi_parity/faceapi_reference.json
//
// What it does:
//   * loads @vladmandic/face-api 1.7.15 through its `dist/face-api.node-wasm.js` build, which
//     uses the pure-JS @tensorflow/tfjs package (cpu backend) plus @tensorflow/tfjs-backend-wasm
//     (its .wasm files ship inside the npm package). Default backend: 'cpu' (pure JS).
//   * loads the expression model from disk with face-api's own loader
//     (`faceExpressionNet.loadFromDisk(modelDir)` -> tf.io weightsLoaderFactory, which
//     dequantises the uint8 weights as q * scale + min).
//   * builds N deterministic 112x112x3 RGB uint8 images (gradients, drawn face-like patterns,
//     LCG noise, constants, checkerboard), wraps each as an int32 tf.Tensor3D and runs
//     `faceExpressionNet.forward([...tensors])`. Because the tensors are already square and
//     112x112, face-api's NetInput.toBatchTensor(112) neither pads nor resizes them; the
//     FaceFeatureExtractor then casts to float32 and normalises internally as
//         x = (rgb - [122.782, 117.001, 104.298]) / 255
//     (ops/normalize.ts then .div(255)), runs the dense blocks, and FaceExpressionNet applies
//     softmax to the fc output. The logits (`runNet`) are written as well.
//   * writes JSON: images (flat HWC uint8 lists), probs, logits and metadata
//     (package version, tfjs version/backend, sha256 of the .bin).

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const SIZE = 112;

function parseArgs(argv) {
  const args = { deps: '/tmp/faceapi_parity', out: null, backend: 'cpu', modelDir: null };
  for (let i = 2; i < argv.length; i += 1) {
    const key = argv[i];
    const val = argv[i + 1];
    if (key === '--deps') args.deps = val;
    else if (key === '--out') args.out = val;
    else if (key === '--backend') args.backend = val;
    else if (key === '--model-dir') args.modelDir = val;
    else throw new Error(`unknown argument ${key}`);
    i += 1;
  }
  args.deps = path.resolve(args.deps);
  if (!args.out) args.out = path.join(args.deps, 'faceapi_reference.json');
  return args;
}

// ---------------------------------------------------------------- deterministic test images
function lcg(seed) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state >>> 24; // top byte, 0..255
  };
}

function newImage(fill = [0, 0, 0]) {
  const img = new Uint8Array(SIZE * SIZE * 3);
  for (let p = 0; p < SIZE * SIZE; p += 1) img.set(fill, p * 3);
  return img;
}

function setPx(img, x, y, rgb) {
  if (x < 0 || y < 0 || x >= SIZE || y >= SIZE) return;
  img.set(rgb, (y * SIZE + x) * 3);
}

const clamp8 = (v) => Math.max(0, Math.min(255, Math.round(v)));

// fill pixels inside the ellipse ((x-cx)/rx)^2 + ((y-cy)/ry)^2 <= 1 (optionally y >= yMin)
function ellipse(img, cx, cy, rx, ry, rgb, yMin = -Infinity) {
  for (let y = 0; y < SIZE; y += 1) {
    for (let x = 0; x < SIZE; x += 1) {
      const d = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
      if (d <= 1 && y >= yMin) setPx(img, x, y, rgb);
    }
  }
}

function rect(img, x0, y0, x1, y1, rgb) {
  for (let y = y0; y <= y1; y += 1) for (let x = x0; x <= x1; x += 1) setPx(img, x, y, rgb);
}

function drawFace(variant) {
  const skin = [224, 172, 140];
  const dark = [45, 30, 28];
  const img = newImage([58, 70, 92]);
  // hair, face, ears
  ellipse(img, 56, 44, 42, 36, [70, 45, 30]);
  ellipse(img, 16, 60, 6, 10, [210, 160, 130]);
  ellipse(img, 96, 60, 6, 10, [210, 160, 130]);
  ellipse(img, 56, 62, 38, 46, skin);
  // eyes: sclera, iris, pupil
  for (const ex of [41, 71]) {
    ellipse(img, ex, 52, 8, variant === 'surprise' ? 6 : 4, [245, 245, 240]);
    ellipse(img, ex, 52, 3.5, 3.5, [90, 60, 40]);
    ellipse(img, ex, 52, 1.6, 1.6, [10, 10, 10]);
  }
  // eyebrows
  const browY = variant === 'surprise' ? 36 : 42;
  rect(img, 32, browY, 50, browY + 2, dark);
  rect(img, 62, browY, 80, browY + 2, dark);
  // nose
  rect(img, 55, 56, 57, 72, [200, 145, 118]);
  ellipse(img, 56, 74, 5, 2.5, [190, 135, 110]);
  // mouth
  if (variant === 'smile') {
    ellipse(img, 56, 82, 16, 10, [150, 50, 55], 84); // lower half of an ellipse
    ellipse(img, 56, 82, 13, 6, skin, 84);
    rect(img, 40, 84, 72, 84, [150, 50, 55]);
  } else {
    ellipse(img, 56, 88, 7, 9, [80, 20, 25]); // open 'O'
  }
  return img;
}

function makeImages() {
  const images = [];
  const add = (name, img) => images.push({ name, img });

  let img = newImage();
  for (let y = 0; y < SIZE; y += 1) {
    for (let x = 0; x < SIZE; x += 1) {
      setPx(img, x, y, [clamp8((x * 255) / 111), clamp8((y * 255) / 111), clamp8(((x + y) * 255) / 222)]);
    }
  }
  add('gradient_rgb', img);

  img = newImage();
  for (let y = 0; y < SIZE; y += 1) {
    for (let x = 0; x < SIZE; x += 1) {
      const d = Math.hypot(x - 55.5, y - 55.5) / 78.5;
      setPx(img, x, y, [clamp8(255 * (1 - d)), clamp8(128 + 100 * Math.cos(6 * d)), clamp8(255 * d)]);
    }
  }
  add('radial', img);

  add('face_smile', drawFace('smile'));
  add('face_surprise', drawFace('surprise'));

  let rnd = lcg(1);
  img = newImage();
  for (let i = 0; i < img.length; i += 1) img[i] = rnd();
  add('noise_lcg_seed1', img);

  rnd = lcg(2);
  img = newImage();
  const blocks = [];
  for (let i = 0; i < 14 * 14; i += 1) blocks.push([rnd(), rnd(), rnd()]);
  for (let y = 0; y < SIZE; y += 1) for (let x = 0; x < SIZE; x += 1) setPx(img, x, y, blocks[(y >> 3) * 14 + (x >> 3)]);
  add('noise_lcg_blocks8_seed2', img);

  add('const_mean', newImage([123, 117, 104]));
  add('const_white', newImage([255, 255, 255]));
  add('const_black', newImage([0, 0, 0]));

  img = newImage();
  for (let y = 0; y < SIZE; y += 1) for (let x = 0; x < SIZE; x += 1) setPx(img, x, y, ((x >> 3) + (y >> 3)) % 2 ? [255, 255, 255] : [0, 0, 0]);
  add('checker_8px', img);

  return images;
}

// ---------------------------------------------------------------- main
async function main() {
  const args = parseArgs(process.argv);
  const require = createRequire(path.join(args.deps, 'package.json'));
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  const faceapiPkg = require('@vladmandic/face-api/package.json');
  const { tf } = faceapi;

  await tf.setBackend(args.backend);
  await tf.ready();
  if (tf.getBackend() !== args.backend) throw new Error(`backend ${args.backend} not active`);

  const modelDir = args.modelDir
    ? path.resolve(args.modelDir)
    : path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  const binPath = path.join(modelDir, 'face_expression_model.bin');
  const manifestPath = path.join(modelDir, 'face_expression_model-weights_manifest.json');
  const sha256 = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');

  const net = faceapi.nets.faceExpressionNet;
  await net.loadFromDisk(modelDir);

  const images = makeImages();
  const tensors = images.map(({ img }) => tf.tensor3d(Int32Array.from(img), [SIZE, SIZE, 3], 'int32'));
  const netInput = await faceapi.toNetInput(tensors);
  const probsT = await net.forward(netInput); // softmax(runNet(...)) as in predictExpressions
  const logitsT = net.runNet(netInput);
  const probs = probsT.arraySync();
  const logits = logitsT.arraySync();
  tf.dispose([probsT, logitsT, ...tensors]);

  const out = {
    meta: {
      package: '@vladmandic/face-api',
      package_version: faceapiPkg.version,
      tfjs_version: tf.version_core,
      tfjs_backend: tf.getBackend(),
      node_version: process.version,
      bin_file: 'face_expression_model.bin',
      bin_sha256: sha256(binPath),
      manifest_sha256: sha256(manifestPath),
      normalisation: 'x = (rgb - [122.782, 117.001, 104.298]) / 255, NHWC 112x112, no resize/pad',
      entry_point: 'faceapi.nets.faceExpressionNet.forward(NetInput of int32 Tensor3D[112,112,3])',
    },
    labels: ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'],
    height: SIZE,
    width: SIZE,
    names: images.map(({ name }) => name),
    images: images.map(({ img }) => Array.from(img)),
    probs,
    logits,
  };
  writeFileSync(args.out, JSON.stringify(out));
  console.log(`wrote ${args.out}: ${images.length} images, backend ${out.meta.tfjs_backend}`);
  images.forEach(({ name }, i) => {
    console.log(`${name.padEnd(24)} ${probs[i].map((p) => p.toFixed(4)).join(' ')}`);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

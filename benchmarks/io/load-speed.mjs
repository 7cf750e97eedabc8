// Weight loading speed: from the page cache into device memory through pinned staging (the
// native loader), for a synthetic bf16 checkpoint of --gb gigabytes split like the released DiT
// (6 shards, 6144x6144-ish tensors). Goal (issue 2): >= 1 GB/s per GB of weights.
//   node benchmarks/io/load-speed.mjs [--gb=4] [--device=cuda] [--dir=/tmp]
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { environment, library, parseFlags, report } from '../lib/harness.mjs';

const flags = parseFlags();
const gigabytes = Number(flags.gb ?? 4);
const sv = await library();
const device = sv.getDevice(flags.device ?? sv.defaultDevice().name);
const dir = mkdtempSync(path.join(flags.dir ?? os.tmpdir(), 'stepvideo-load-'));
try {
  const tensorBytes = 6144 * 6144 * 2;
  const count = Math.max(1, Math.round((gigabytes * 1e9) / tensorBytes));
  const shards = 6;
  const weightMap = {};
  const data = new Uint16Array(6144 * 6144);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 16;
  for (let s = 0; s < shards; s++) {
    const tensors = {};
    for (let i = s; i < count; i += shards) {
      tensors[`blocks.${i}.weight`] = { dtype: 'bf16', shape: [6144, 6144], data };
      weightMap[`blocks.${i}.weight`] = `model-${s + 1}.safetensors`;
    }
    await sv.writeSafetensors(path.join(dir, `model-${s + 1}.safetensors`), tensors);
  }
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  // Warm the page cache, as a second load of the same model would find it.
  for (let s = 0; s < shards; s++) readFileSync(path.join(dir, `model-${s + 1}.safetensors`));
  const index = await sv.openWeights(path.join(dir, 'model.safetensors.index.json'));
  const records = index.names().map((n) => index.get(n));
  const dtype = device.isCuda ? 'bf16' : 'f32';
  const start = performance.now();
  const tensors = await sv.loadRecords(records, { device, dtype });
  await device.synchronize();
  const seconds = (performance.now() - start) / 1000;
  for (const t of tensors.values()) t.dispose();
  const gb = index.totalBytes / 1e9;
  report({
    benchmark: 'weights-load',
    ...environment(device),
    device: device.name,
    gigabytes: Number(gb.toFixed(3)),
    seconds: Number(seconds.toFixed(3)),
    gbPerSecond: Number((gb / seconds).toFixed(3)),
    goalGbPerSecond: 1,
    meetsGoal: gb / seconds >= 1,
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}

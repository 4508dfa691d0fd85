/**
 * Pick a model's decision threshold and neighbour weight (its card's `threshold` and
 * `neighbourWeight`) on validation scans: seeds of the training range that the training run held
 * out, never the evaluation seeds. The pair with the best foreground Dice among those that keep pits
 * and bubbles called dendrite under 1.5% wins.
 *
 *   node --import tsx models/training/choose-threshold.ts --model tnet [--runs DIR] [--scans 3]
 *     [--weights 0,0.05,0.1,0.15,0.2]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SegmentationMetrics } from '../../src/eval/segmentation-metrics.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { segmentSlice } from '../../src/inference/segment-slice.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'tnet' },
    runs: { type: 'string', default: 'models/training/runs' },
    scans: { type: 'string', default: '3' },
    size: { type: 'string', default: '256' },
    slices: { type: 'string', default: '64' },
    weights: { type: 'string', default: '0,0.05,0.1,0.15,0.2' },
  },
});
const name = values.model as string;
const train = JSON.parse(await readFile(join(values.runs as string, `${name}.train.json`), 'utf8'));
const seeds = (train.split?.valSeeds as number[]).slice(0, Number(values.scans));
const thresholds = [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6];
const weights = (values.weights as string).split(',').map(Number);
const metrics = weights.flatMap((w) => thresholds.map((t) => ({ w, t, m: new SegmentationMetrics(128) })));
const model = await loadModel(name);
try {
  for (const seed of seeds) {
    const phantom = createPhantom({ seed, size: Number(values.size), slices: Number(values.slices) });
    const rendered = Array.from({ length: phantom.slices }, (_, z) => renderSlice(phantom, z));
    for (const [z, { image, labels }] of rendered.entries()) {
      for (const w of weights) {
        const { prob } = await segmentSlice(model, image, phantom.size, phantom.size, {
          neighbourWeight: w,
          ...(z > 0 && { previous: rendered[z - 1]?.image }),
          ...(z + 1 < phantom.slices && { next: rendered[z + 1]?.image }),
        });
        for (const { t, m } of metrics.filter((x) => x.w === w)) {
          const mask = new Uint8Array(prob.length);
          for (let i = 0; i < prob.length; i++) mask[i] = (prob[i] as number) >= t ? 1 : 0;
          m.addSlice(mask, labels, phantom.size, phantom.size);
        }
      }
    }
  }
} finally {
  await model.close();
}
let best: { w: number; t: number; dice: number } | undefined;
console.log(`${name} on validation seeds ${seeds.join(', ')}:`);
for (const { w, t, m } of metrics) {
  const s = m.scores();
  const ok = s.pitAsDendrite <= 0.015 && s.bubbleAsDendrite <= 0.015;
  console.log(
    `  neighbour weight ${w.toFixed(3)}, threshold ${t.toFixed(2)}: Dice ${s.dice.toFixed(4)} mIoU ${s.mIoU.toFixed(4)} pit ${(s.pitAsDendrite * 100).toFixed(2)}% bubble ${(s.bubbleAsDendrite * 100).toFixed(2)}%${ok ? '' : ' (confounders too high)'}`,
  );
  if (ok && (!best || s.dice > best.dice)) best = { w, t, dice: s.dice };
}
console.log(`chosen: neighbour weight ${best?.w}, threshold ${best?.t}`);

/**
 * Print the comparison table of models/README.md from the model cards (so every number in it is
 * one the evaluation produced):  node --import tsx models/training/model-table.ts
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MODELS_DIR } from '../../src/inference/model-card.ts';

interface Card {
  name: string;
  metrics?: {
    heldOut: { iou: number; dice: number; mIoU: number; mDSC: number; pitAsDendrite: number; bubbleAsDendrite: number; seeds: number[]; size: number; slices: number };
    speed: { batch1?: { msPerPatch: number }; best: { batch: number; msPerPatch: number } };
    paper: { mIoU: number; mDSC: number; msPerPatch: number };
    command: string;
  };
}

const label: Record<string, string> = { unet: 'U-Net', tnet: 'T-Net', enet: 'E-Net (0.2·U + 0.8·T)' };
const rows: string[] = [
  '| model | paper mIoU | paper mDSC | paper ms/patch | our mIoU | our mDSC | our Dice (fg) | our IoU (fg) | pits → dendrite | bubbles → dendrite | ms/patch batch 1 | ms/patch best batch | command |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
];
for (const name of ['unet', 'tnet', 'enet']) {
  const text = await readFile(join(MODELS_DIR, `${name}.json`), 'utf8').catch(() => undefined);
  if (text === undefined) continue;
  const card = JSON.parse(text) as Card;
  const m = card.metrics;
  if (!m) continue;
  const h = m.heldOut;
  const f = (v: number) => v.toFixed(4);
  const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
  rows.push(
    `| ${label[name]} | ${m.paper.mIoU} | ${m.paper.mDSC} | ${m.paper.msPerPatch} | ${f(h.mIoU)} | ${f(h.mDSC)} | ${f(h.dice)} | ${f(h.iou)} | ${pct(h.pitAsDendrite)} | ${pct(h.bubbleAsDendrite)} | ${m.speed.batch1?.msPerPatch.toFixed(2)} | ${m.speed.best.msPerPatch.toFixed(2)} (batch ${m.speed.best.batch}) | \`${m.command}\` |`,
  );
}
console.log(rows.join('\n'));

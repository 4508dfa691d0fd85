// Scratch: per slice, how the daemon's monitor sees one truth dendrite (not committed).
import { DEFAULT_ALERT_RULES, severityFor } from './src/alerts/alert-rules.ts';
import { DendriteMonitor } from './src/alerts/dendrite-monitor.ts';
import { DendriteTruth, qualifyingSlice } from './src/eval/dendrite-truth.ts';
import { loadModel } from './src/inference/load-model.ts';
import { segmentSlice } from './src/inference/segment-slice.ts';
import { createPhantom } from './src/sim/phantom.ts';
import { renderSlice } from './src/sim/render-slice.ts';
import { normalizeSlice } from './src/slices/normalize-slice.ts';
import { quantizeProbability } from './src/slices/probability.ts';

const [seedArg, idArg, modelsDir] = process.argv.slice(2);
const seed = Number(seedArg);
const want = Number(idArg);
const phantom = createPhantom({ seed, size: 256, slices: 64 });
const rendered = Array.from({ length: 64 }, (_, z) => renderSlice(phantom, z));
const truth = new DendriteTruth(phantom);
for (const [z, r] of rendered.entries()) truth.addSlice(z, r.labels);
const d = truth.dendrites().find((x) => x.id === want)!;
const area = 256 * 256;
const mine = new Set(d.voxels);
console.log(`dendrite ${want} ${d.morphology} height ${d.heightFraction.toFixed(2)} voxels ${d.voxels.length} qualifies at ${qualifyingSlice(d, DEFAULT_ALERT_RULES)}`);
const model = await loadModel('tnet', modelsDir ? { modelsDir } : {});
const mon = new DendriteMonitor({ scanId: 's', width: 256, height: 256, voxelSizeUm: 1, expectedSlices: 64, rules: DEFAULT_ALERT_RULES, model: model.identity, zarrPath: 'x' });
for (let z = 0; z < 64; z++) {
  const r = rendered[z]!;
  const { prob, mask } = await segmentSlice(model, r.image, 256, 256, { previous: rendered[z - 1]?.image, next: rendered[z + 1]?.image });
  const storedProb = quantizeProbability(prob);
  const alerts = mon.addSlice({ z, width: 256, height: 256, mask, normalized: normalizeSlice(r.image), prob: storedProb }, z + 1);
  let tv = 0, hit = 0;
  for (let i = 0; i < area; i++) if (mine.has(z * area + i)) { tv++; if (mask[i]) hit++; }
  if (d.voxelsUpTo[z] === 0 && tv === 0) continue;
  // biome-ignore lint: scratch
  const tracker = (mon as any).tracker;
  const comps = tracker.components() as any[];
  const parts: string[] = [];
  for (const c of comps) {
    const b = c.bbox;
    // overlap with the dendrite's voxels in this slice
    let ov = 0;
    for (let y = b.yMin; y <= b.yMax; y++) for (let x = b.xMin; x <= b.xMax; x++) if (mine.has(z * area + y * 256 + x) && mask[y * 256 + x]) ov++;
    if (ov === 0) continue;
    const m = (mon as any).measure(c);
    const sev = m && severityFor(DEFAULT_ALERT_RULES, { voxelCount: c.voxelCount, confidence: c.probMean, heightFraction: m.heightFraction, rooted: m.rooted });
    parts.push(`#${c.id} n${c.voxelCount} p${c.probMean.toFixed(2)} h${m ? m.heightFraction.toFixed(2) : '?'} ${m?.rooted ? 'rooted' : 'UNROOTED'} y${b.yMin}-${b.yMax} ${sev ?? '-'}`);
  }
  console.log(`z${z}: truth ${tv} (so far ${d.voxelsUpTo[z]}, h ${d.heightFractionUpTo[z]!.toFixed(2)}), in mask ${hit} | ${parts.join(' ; ')}${alerts.length ? ` | ALERTS ${alerts.map((a) => `${a.componentId}:${a.severity}`).join(',')}` : ''}`);
}
await model.close();

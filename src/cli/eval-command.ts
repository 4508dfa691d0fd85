import { type AlertRules, DEFAULT_ALERT_RULES, resolveAlertRules } from '../alerts/alert-rules.ts';
import { CONFIG_DEFAULTS } from '../config/pipeline-config.ts';
import { UsageError } from '../errors.ts';
import { evaluateAlerts } from '../eval/evaluate-alerts.ts';
import { evaluateModel, measureSpeed } from '../eval/evaluate-model.ts';
import { evaluateScan } from '../eval/evaluate-scan.ts';
import { formatAlertReport } from '../eval/format-alert-report.ts';
import { loadModel, modelRef } from '../inference/load-model.ts';
import { MODEL_NAMES, type ModelCard, readModelCard } from '../inference/model-card.ts';
import { PROVIDERS } from '../inference/open-onnx-session.ts';
import type { CommandContext } from './command-context.ts';
import { choiceOption, intOption, modelOption, parseOptions, stringOption } from './parse-options.ts';
import { reconOptions } from './replay-command.ts';

/** First held-out seed: far above any training seed range we use (training starts at 1000). */
export const EVAL_SEED = 900_000;

/** First held-out seed of the alert evaluation; its dendrite-free scans start ALERT_FREE_OFFSET above. */
export const ALERT_EVAL_SEED = 910_000;
export const ALERT_FREE_OFFSET = 10_000;

export const EVAL_HELP = `Usage:
  xct-sentinel eval --model tnet|unet|enet [--seed N] [--scans N] [--size N] [--slices N]
                    [--batch N] [--no-speed] [--provider cpu|cuda|tensorrt|webgpu] [--threads N]
                    [--precision fp32|int8] [--models-dir DIR] [--json]
  xct-sentinel eval --alerts [--model tnet|unet|enet] [--seed N] [--scans N] [--free-scans N]
                    [--dendrites N] [--size N] [--slices N] [--rule KEY=VALUE]…
                    [--also-rules KEY=VALUE[,KEY=VALUE…]]… [--models-dir DIR] [--json]
  xct-sentinel eval --scan ARCHIVE --truth LABELS [--model tnet|unet|enet] [--center C] [--filter F]
                    [--models-dir DIR] [--json]

Generates held-out simulated scans (seeds N, N+1, …; never a training seed), segments them with
the model through onnxruntime-node and prints foreground IoU/Dice over the volumes, the paper's
patch-mean mIoU/mDSC, how many pit and bubble voxels were called dendrite, and patches/s.
Defaults: --seed ${EVAL_SEED} --scans 3 --size 256 --slices 64 --batch 16

With --alerts it judges the alerts instead: each held-out scan (seeds N, N+1, …, with --dendrites
per scan, default the simulator's 6) and each dendrite-free scan (--free-scans of them, seeds
N+${ALERT_FREE_OFFSET}, …) is replayed through the daemon's own pipeline at full speed with the default alert
rules, and its dendrite alerts are matched to the simulator's truth dendrites. It prints, per habit
(tree, mossy, needle) and height class (≥ 5%, ≥ 30%, ≥ 85% of the electrolyte): recall, the
highest severity raised, the delay in slices from qualifying to the first alert, the scan still
to come at that alert, the share of truth voxels in the mask; and false alerts per scan.
--rule KEY=VALUE overrides one alert rule (as alerts.rules in a pipeline file), e.g.
--rule minVoxels=100; repeat it for more. --also-rules KEY=VALUE,… judges the same masks once more
with those rules changed (over --rule's), side by side, without running the model again; repeat
it to compare several.
Defaults: --model ${CONFIG_DEFAULTS.model} --seed ${ALERT_EVAL_SEED} --scans 20 --free-scans 20 --size 256 --slices 64

With --scan and --truth it scores the model on your own scan: ARCHIVE is anything replay reads
(projections are reconstructed, with --center and --filter as for replay); LABELS is a multi-page
TIFF or a Zarr array of the same shape, or a folder of label TIFFs for only some slices, each
named by its slice number (slice_00042.tif). Labels: 0 background, 1 dendrite, 255 unlabelled
(left out), any other value not dendrite. It prints foreground Dice/IoU and the paper's patch-mean
mIoU/mDSC over the labelled voxels of the labelled slices.
`;

const SPEC = {
  model: { type: 'string' },
  precision: { type: 'string' },
  seed: { type: 'string' },
  scans: { type: 'string' },
  size: { type: 'string' },
  slices: { type: 'string' },
  batch: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
  'models-dir': { type: 'string' },
  'no-speed': { type: 'boolean' },
  alerts: { type: 'boolean' },
  scan: { type: 'string' },
  truth: { type: 'string' },
  center: { type: 'string' },
  filter: { type: 'string' },
  'free-scans': { type: 'string' },
  dendrites: { type: 'string' },
  rule: { type: 'string', multiple: true },
  'also-rules': { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `xct-sentinel eval`: score a shipped model on held-out simulated scans. */
export async function evalCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseOptions('eval', args, SPEC);
  if (values.help) {
    ctx.stdout.write(EVAL_HELP);
    return 0;
  }
  if (values.alerts) return evalAlerts(values, ctx);
  if (values.scan !== undefined || values.truth !== undefined) return evalScan(values, ctx);
  for (const only of ['free-scans', 'dendrites'] as const)
    if (values[only] !== undefined)
      throw new UsageError(`--${only} goes with --alerts`, { option: `--${only}` });
  const modelArg = values.model === undefined ? undefined : modelOption(values, '');
  if (modelArg === undefined)
    throw new UsageError(`eval needs --model (${MODEL_NAMES.join(', ')}, or a card's path)`, {
      option: '--model',
    });
  const seed = intOption(values, 'seed', EVAL_SEED, 0, 2 ** 48);
  const scans = intOption(values, 'scans', 3, 1, 1000);
  const size = intOption(values, 'size', 256, 32, 4096);
  const slices = intOption(values, 'slices', 64, 1, 65536);
  const batch = intOption(values, 'batch', 16, 1, 1024);
  const threads = intOption(values, 'threads', 0, 0, 1024);
  const provider = choiceOption(values, 'provider', PROVIDERS, 'cpu');
  const { name, modelsDir } = modelRef(modelArg, stringOption(values, 'models-dir'));
  const seeds = Array.from({ length: scans }, (_, i) => seed + i);

  await refuseTrainingSeeds(name, modelsDir, seeds);
  const model = await loadModel(name, { modelsDir, provider, threads, thread: 'inline' });
  try {
    const started = performance.now();
    const scores = await evaluateModel(model, {
      seeds,
      size,
      slices,
      batch,
      signal: ctx.signal,
      onSlice: (done, total) => ctx.progress(`eval ${name}: slice ${done}/${total}`),
    });
    const seconds = (performance.now() - started) / 1000;
    const speed = values['no-speed'] ? [] : await measureSpeed(model, { signal: ctx.signal });
    const best = speed.reduce<(typeof speed)[number] | undefined>(
      (b, p) => (!b || p.patchesPerSecond > b.patchesPerSecond ? p : b),
      undefined,
    );
    const report = {
      model: model.identity,
      fallbackReason: model.fallbackReason,
      scans: { seeds, size, slices },
      ...scores,
      seconds,
      speed: { points: speed, batch1: speed.find((p) => p.batch === 1), best },
    };
    if (values.json) {
      ctx.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
    const lines = [
      `model ${model.identity.name} ${model.identity.version} (sha256 ${model.identity.sha256.slice(0, 12)}…, ${model.identity.provider}) on ${scans} held-out scan(s): seeds ${seeds[0]}–${seeds.at(-1)}, ${size}×${size}×${slices}`,
      `  foreground IoU ${scores.iou.toFixed(4)}   Dice ${scores.dice.toFixed(4)}`,
      `  paper-style mIoU ${scores.mIoU.toFixed(4)}   mDSC ${scores.mDSC.toFixed(4)}   (${scores.patches} patches)`,
      `  pit voxels called dendrite ${pct(scores.pitAsDendrite)}   bubble voxels ${pct(scores.bubbleAsDendrite)}`,
      `  truth voxels in the mask, per habit: ${(['tree', 'mossy', 'needle'] as const)
        .map(
          (h) =>
            `${h} ${scores.habits[h].voxels > 0 ? pct(scores.habits[h].recall) : '–'} of ${scores.habits[h].voxels}`,
        )
        .join('   ')}`,
    ];
    if (report.speed.batch1 && best)
      lines.push(
        `  speed: batch 1 ${report.speed.batch1.msPerPatch.toFixed(2)} ms/patch (${report.speed.batch1.patchesPerSecond.toFixed(1)} patches/s); best batch ${best.batch} ${best.msPerPatch.toFixed(2)} ms/patch (${best.patchesPerSecond.toFixed(1)} patches/s)`,
      );
    ctx.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await model.close();
  }
}

type Values = ReturnType<typeof parseOptions>['values'];

/** `eval --alerts`: the daemon's alerts on held-out scans, matched to the truth dendrites. */
async function evalAlerts(values: Values, ctx: CommandContext): Promise<number> {
  for (const only of ['batch', 'no-speed'] as const)
    if (values[only] !== undefined)
      throw new UsageError(`--${only} does not go with --alerts (the daemon's own settings are used)`, {
        option: `--${only}`,
      });
  const modelArg = modelOption(values, CONFIG_DEFAULTS.model);
  const seed = intOption(values, 'seed', ALERT_EVAL_SEED, 0, 2 ** 48);
  const scans = intOption(values, 'scans', 20, 0, 1000);
  const freeScans = intOption(values, 'free-scans', 20, 0, 1000);
  if (scans + freeScans === 0)
    throw new UsageError('--scans and --free-scans are both 0: nothing to evaluate', { option: '--scans' });
  const dendrites = values.dendrites === undefined ? undefined : intOption(values, 'dendrites', 6, 1, 64);
  const size = intOption(values, 'size', 256, 32, 4096);
  const slices = intOption(values, 'slices', 64, 1, 65536);
  const threads = intOption(values, 'threads', CONFIG_DEFAULTS.threads, 0, 1024);
  const provider = choiceOption(values, 'provider', PROVIDERS, CONFIG_DEFAULTS.provider);
  const { name, modelsDir } = modelRef(modelArg, stringOption(values, 'models-dir'));
  const seeds = Array.from({ length: scans }, (_, i) => seed + i);
  const freeSeeds = Array.from({ length: freeScans }, (_, i) => seed + ALERT_FREE_OFFSET + i);
  const rules = ruleOptions(values.rule);
  const alsoRules = (Array.isArray(values['also-rules']) ? values['also-rules'] : []).map((set) =>
    ruleOptions(
      [...(Array.isArray(values.rule) ? values.rule : []), ...String(set).split(',')],
      '--also-rules',
    ),
  );
  await refuseTrainingSeeds(name, modelsDir, [...seeds, ...freeSeeds]);
  const model = await loadModel(name, {
    modelsDir,
    provider,
    threads,
    sessions: CONFIG_DEFAULTS.sessions,
  });
  try {
    const started = performance.now();
    const result = await evaluateAlerts(model, {
      seeds,
      dendriteFreeSeeds: freeSeeds,
      size,
      slices,
      ...(dendrites !== undefined && { dendrites }),
      rules,
      alsoRules,
      signal: ctx.signal,
      onSlice: (done, total) => ctx.progress(`eval --alerts ${name}: slice ${done}/${total}`),
    });
    const seconds = (performance.now() - started) / 1000;
    const report = {
      model: model.identity,
      scans: { seeds, dendriteFreeSeeds: freeSeeds, size, slices, dendrites: dendrites ?? null },
      rules,
      ...result,
      seconds,
    };
    ctx.stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatAlertReport(report));
    return 0;
  } finally {
    await model.close();
  }
}

/** `--rule minVoxels=100 --rule …` over the default rules, checked as a pipeline file's would be. */
function ruleOptions(raw: unknown, option = '--rule'): AlertRules {
  const given = Array.isArray(raw) ? raw.map(String) : [];
  const rules: Record<string, number> = {};
  for (const item of given) {
    const match = /^(\w+)=(.+)$/.exec(item.trim());
    const key = match?.[1];
    const value = Number(match?.[2]);
    if (!key || !Number.isFinite(value))
      throw new UsageError(`${option} ${item}: write KEY=NUMBER, e.g. ${option} minVoxels=100`, { option });
    if (!(key in DEFAULT_ALERT_RULES))
      throw new UsageError(
        `${option} ${item}: unknown rule "${key}"; the rules are ${Object.keys(DEFAULT_ALERT_RULES).join(', ')}`,
        { option },
      );
    rules[key] = value;
  }
  try {
    return resolveAlertRules(rules as Partial<AlertRules>, option);
  } catch (cause) {
    throw new UsageError(cause instanceof Error ? cause.message : String(cause), { option }, { cause });
  }
}

/** Evaluation needs held-out seeds: refuse any seed a model in the card was trained on. */
async function refuseTrainingSeeds(name: string, modelsDir: string, seeds: readonly number[]): Promise<void> {
  const card = await readModelCard(name, modelsDir);
  for (const range of await trainingSeedRanges(card, modelsDir)) {
    const clash = seeds.find((s) => s >= range.from && s <= range.to);
    if (clash !== undefined)
      throw new UsageError(
        `--seed: scan seed ${clash} was used to train ${range.model} (seeds ${range.from}–${range.to}); evaluation needs held-out seeds`,
        { option: '--seed' },
      );
  }
}

async function trainingSeedRanges(
  card: ModelCard,
  modelsDir: string,
): Promise<{ model: string; from: number; to: number }[]> {
  if (card.kind === 'ensemble') {
    const nested = await Promise.all(
      card.members.map(async (m) => trainingSeedRanges(await readModelCard(m.name, modelsDir), modelsDir)),
    );
    return nested.flat();
  }
  const seeds = (card.training as { seeds?: { from?: unknown; to?: unknown } }).seeds;
  return typeof seeds?.from === 'number' && typeof seeds.to === 'number'
    ? [{ model: card.name, from: seeds.from, to: seeds.to }]
    : [];
}

/** `eval --scan ARCHIVE --truth LABELS`: the model on a user's scan and labels. */
async function evalScan(values: Parameters<typeof stringOption>[0], ctx: CommandContext): Promise<number> {
  const scan = stringOption(values, 'scan');
  const truth = stringOption(values, 'truth');
  if (scan === undefined || truth === undefined)
    throw new UsageError('eval --scan ARCHIVE needs --truth LABELS, and --truth needs --scan', {
      option: scan === undefined ? '--scan' : '--truth',
    });
  const recon = reconOptions(values);
  const { name, modelsDir } = modelRef(
    modelOption(values, CONFIG_DEFAULTS.model),
    stringOption(values, 'models-dir'),
  );
  const model = await loadModel(name, { modelsDir, thread: 'inline' });
  try {
    const r = await evaluateScan(model, { scan, truth, recon, signal: ctx.signal });
    if (values.json) {
      ctx.stdout.write(`${JSON.stringify(r)}\n`);
      return 0;
    }
    const slices = r.labelledSlices;
    ctx.stdout.write(
      [
        `model ${r.model.name} ${r.model.version} (sha256 ${r.model.sha256.slice(0, 12)}…, ${r.model.provider}) on ${scan} (${r.size.width}×${r.size.height}×${r.size.slices})`,
        `  labels ${truth}: ${slices.length} slice(s) labelled (${slices.length > 8 ? `${slices.slice(0, 8).join(', ')}, …` : slices.join(', ')}), ${r.labelledVoxels} voxels`,
        `  foreground IoU ${r.iou.toFixed(4)}   Dice ${r.dice.toFixed(4)}`,
        `  paper-style mIoU ${r.mIoU.toFixed(4)}   mDSC ${r.mDSC.toFixed(4)}   (${r.patches} patches)`,
        `  voxels: ${r.voxels.truePositive} true positive, ${r.voxels.falsePositive} false positive, ${r.voxels.falseNegative} false negative`,
      ].join('\n') + '\n',
    );
    return 0;
  } finally {
    await model.close();
  }
}

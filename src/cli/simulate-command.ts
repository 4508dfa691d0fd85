import { mkdir, writeFile } from 'node:fs/promises';
import { OutputError, UsageError } from '../errors.ts';
import { kafkaSecurityFromEnv } from '../kafka/kafka-client.ts';
import { isTopicName, parseBrokerList } from '../kafka/parse-kafka-url.ts';
import { publishSimulatedScan } from '../kafka/publish-simulated-scan.ts';
import { createLogger } from '../log.ts';
import { exportDataset } from '../sim/export-dataset.ts';
import { runLiveScanner, WRITE_MODES } from '../sim/live-scanner.ts';
import { createPhantom, PHANTOM_DEFAULTS } from '../sim/phantom.ts';
import { writeProjectionScan } from '../sim/projection-scan.ts';
import { renderPreview } from '../sim/render-preview.ts';
import type { CommandContext } from './command-context.ts';
import { choiceOption, intOption, parseOptions, positiveOption, stringOption } from './parse-options.ts';

export const SIMULATE_HELP = `Usage:
  xct-sentinel simulate --out DIR [--scan-id ID] [--seed N] [--size N] [--slices N]
                        [--rate SLICES_PER_S] [--dendrites N] [--write-mode rename|inplace] [--json]
  xct-sentinel simulate --kafka HOST:PORT[,HOST:PORT] [--topic T] [--pixels-dir DIR] [options of --out]
  xct-sentinel simulate --dataset DIR --patches N [--seed N] [--size N] [--slices N] [--neighbour-weight W]
                        [--needle-fraction F] [--input-channels 1|3]
  xct-sentinel simulate --preview FILE.png [--seed N] [--size N] [--slices N] [--dendrites N] [--slice Z]
  xct-sentinel simulate --projections DIR [--angles 360] [--scan-id ID] [--seed N] [--size N] [--slices N] [--dendrites N]

A synthetic X-ray CT scanner for Li|polymer|Li cells.
  --out DIR       behave like a live scanner: DIR/<scanId>/scan.json, then slice_00000.tif… at
                  --rate slices/s, then DIR/<scanId>.truth.tif (uint8 labels) and DIR/<scanId>/scan.done
  --kafka BROKERS the same live scan as Avro slice messages on a Kafka topic (default xct.slices),
                  key = scan id; --pixels-dir DIR sends file references to raw files there instead
                  of inline pixels (for slices over the broker's message size limit)
  --dataset DIR   export --patches 128×128 training patches as .npy files with index.json;
                  --neighbour-weight W blends each patch's slice with its neighbours first, as the
                  daemon does for a model card with that neighbourWeight (default 0);
                  --needle-fraction F places that share of the patches on thin needle dendrites
                  (default 0); habits.npy gives each dendrite voxel's habit (1 tree, 2 mossy, 3 needle);
                  --input-channels 3 stores each patch with the slices above and below as planes
                  of their own (N×3×P×P), for a model card with inputChannels 3
  --preview FILE  render a slice and a side view, raw and with the ground truth outlined, as PNG
  --projections DIR
                  a projection scanner: each slice forward-projected (parallel beam, --angles over
                  180°) and detected with Poisson noise, as DIR/<scanId>.h5 (DXchange: data,
                  data_white, data_dark, theta) and DIR/<scanId>.truth.tif; the field of view is the
                  circle inscribed in the slice (the sample outside it is cut away, truth too).
                  \`replay DIR/<scanId>.h5\` reconstructs and segments it

Defaults: --seed 1 --size ${PHANTOM_DEFAULTS.size} --slices ${PHANTOM_DEFAULTS.slices} --rate 20 --dendrites ${PHANTOM_DEFAULTS.dendrites} --write-mode rename
`;

const SPEC = {
  out: { type: 'string' },
  dataset: { type: 'string' },
  preview: { type: 'string' },
  'scan-id': { type: 'string' },
  seed: { type: 'string' },
  size: { type: 'string' },
  slices: { type: 'string' },
  rate: { type: 'string' },
  dendrites: { type: 'string' },
  'write-mode': { type: 'string' },
  patches: { type: 'string' },
  slice: { type: 'string' },
  json: { type: 'boolean' },
  kafka: { type: 'string' },
  topic: { type: 'string' },
  'pixels-dir': { type: 'string' },
  'neighbour-weight': { type: 'string' },
  'needle-fraction': { type: 'string' },
  'input-channels': { type: 'string' },
  projections: { type: 'string' },
  angles: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `xct-sentinel simulate`: live scan, training dataset, or preview picture. */
export async function simulateCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseOptions('simulate', args, SPEC);
  if (values.help) {
    ctx.stdout.write(SIMULATE_HELP);
    return 0;
  }
  const modes = (['out', 'kafka', 'dataset', 'preview', 'projections'] as const).filter(
    (m) => stringOption(values, m) !== undefined,
  );
  if (modes.length !== 1)
    throw new UsageError(
      modes.length === 0
        ? 'simulate: give one of --out DIR (live scan), --kafka HOST:PORT (live scan to Kafka), --dataset DIR (training patches), --preview FILE.png or --projections DIR'
        : `simulate: --${modes.join(' and --')} cannot be combined; give one`,
      { option: modes.length ? `--${modes[1]}` : '--out' },
    );
  const seed = intOption(values, 'seed', 1, 0, 2 ** 48);
  const size = intOption(values, 'size', PHANTOM_DEFAULTS.size, 32, 4096);
  const slices = intOption(values, 'slices', PHANTOM_DEFAULTS.slices, 1, 65536);
  const dendrites = intOption(values, 'dendrites', PHANTOM_DEFAULTS.dendrites, 0, 200);

  if (modes[0] === 'dataset') {
    const dir = stringOption(values, 'dataset') as string;
    if (stringOption(values, 'patches') === undefined)
      throw new UsageError('simulate --dataset needs --patches N', { option: '--patches' });
    const patches = intOption(values, 'patches', 0, 1, 10_000_000);
    const started = performance.now();
    const index = await exportDataset({
      dir,
      patches,
      seed,
      ...(stringOption(values, 'size') !== undefined && { size }),
      ...(stringOption(values, 'slices') !== undefined && { slices }),
      ...(values['neighbour-weight'] !== undefined && {
        // Any number here; exportDataset says which ones it takes.
        neighbourWeight: positiveOption(values, 'neighbour-weight', 0, Number.NEGATIVE_INFINITY),
      }),
      ...(values['needle-fraction'] !== undefined && {
        needleFraction: positiveOption(values, 'needle-fraction', 0, Number.NEGATIVE_INFINITY),
      }),
      ...(values['input-channels'] !== undefined && {
        inputChannels: intOption(values, 'input-channels', 1, 1, 3),
      }),
      signal: ctx.signal,
      onProgress: (done, total) => ctx.progress(`dataset: ${done}/${total} patches`),
    });
    const seconds = (performance.now() - started) / 1000;
    ctx.stdout.write(
      values.json
        ? `${JSON.stringify({ dir, patches: index.count, seeds: [index.seeds[0], index.seeds.at(-1)], seconds })}\n`
        : `wrote ${index.count} patches from ${index.seeds.length} scans (seeds ${index.seeds[0]}–${index.seeds.at(-1)}) to ${dir} in ${seconds.toFixed(1)} s\n`,
    );
    return 0;
  }

  if (modes[0] === 'projections') return simulateProjections(values, ctx, { seed, size, slices, dendrites });

  if (modes[0] === 'preview') {
    const file = stringOption(values, 'preview') as string;
    if (!file.toLowerCase().endsWith('.png'))
      throw new UsageError(`--preview must name a .png file, got "${file}"`, { option: '--preview' });
    const phantom = createPhantom({ seed, size, slices, dendrites });
    const slice =
      stringOption(values, 'slice') === undefined ? undefined : intOption(values, 'slice', 0, 0, slices - 1);
    const { png, slice: shown, column } = renderPreview(phantom, slice === undefined ? {} : { slice });
    try {
      await writeFile(file, png);
    } catch (cause) {
      throw new OutputError(
        `--preview ${file}: cannot write`,
        { path: file, option: '--preview' },
        { cause },
      );
    }
    ctx.stdout.write(`wrote ${file}: slice ${shown} (x–y) and the y–z side view at x = ${column}\n`);
    return 0;
  }

  const rate = positiveOption(values, 'rate', 20);
  if (modes[0] === 'kafka') {
    const brokers = parseBrokerList(stringOption(values, 'kafka') as string, '--kafka');
    const topic = stringOption(values, 'topic') ?? 'xct.slices';
    if (!isTopicName(topic))
      throw new UsageError(`--topic "${topic}" is not a Kafka topic name`, { option: '--topic' });
    const scanId = stringOption(values, 'scan-id');
    const pixelsDir = stringOption(values, 'pixels-dir');
    const result = await publishSimulatedScan({
      brokers,
      topic,
      seed,
      size,
      slices,
      dendrites,
      rate,
      security: kafkaSecurityFromEnv(),
      log: createLogger({ level: process.env.XCT_LOG_LEVEL ?? 'warn', name: 'xct-sentinel-simulate' }),
      signal: ctx.signal,
      ...(scanId !== undefined && { scanId }),
      ...(pixelsDir !== undefined && { pixelsDir }),
      onSlice: ({ z }) => ctx.progress(`slice ${z + 1}/${slices}`),
    });
    const seconds = result.elapsedMs / 1000;
    ctx.stdout.write(
      values.json
        ? `${JSON.stringify({ ...result, topic, brokers })}\n`
        : `published ${result.slices} slices of ${result.scanId} to ${topic} in ${seconds.toFixed(1)} s (${(result.slices / seconds).toFixed(1)} slices/s)\n`,
    );
    return 0;
  }
  const out = stringOption(values, 'out') as string;
  const writeMode = choiceOption(values, 'write-mode', WRITE_MODES, 'rename');
  const scanId = stringOption(values, 'scan-id');
  const result = await runLiveScanner({
    out,
    seed,
    size,
    slices,
    dendrites,
    rate,
    writeMode,
    signal: ctx.signal,
    ...(scanId !== undefined && { scanId }),
    onSlice: ({ z }) => ctx.progress(`slice ${z + 1}/${slices}`),
  });
  const seconds = result.elapsedMs / 1000;
  ctx.stdout.write(
    values.json
      ? `${JSON.stringify(result)}\n`
      : `wrote ${result.slices} slices to ${result.scanDir} in ${seconds.toFixed(1)} s (${(result.slices / seconds).toFixed(1)} slices/s); truth: ${result.truthPath}\n`,
  );
  return 0;
}

/** `simulate --projections DIR`: a projection scan as a DXchange file, with its truth. */
async function simulateProjections(
  values: Parameters<typeof stringOption>[0],
  ctx: CommandContext,
  { seed, size, slices, dendrites }: { seed: number; size: number; slices: number; dendrites: number },
): Promise<number> {
  const out = stringOption(values, 'projections') as string;
  const scanId = stringOption(values, 'scan-id') ?? `proj-${seed}`;
  if (!/^[\w.-]+$/.test(scanId) || scanId === '.' || scanId === '..')
    throw new UsageError(`--scan-id may hold letters, digits, '.', '_' and '-' only, got "${scanId}"`, {
      option: '--scan-id',
    });
  const angles = intOption(values, 'angles', 360, 2, 100_000);
  try {
    await mkdir(out, { recursive: true });
  } catch (cause) {
    throw new OutputError(
      `--projections ${out}: cannot create the folder`,
      { path: out, option: '--projections' },
      { cause },
    );
  }
  const started = performance.now();
  const r = await writeProjectionScan({ out, scanId, seed, size, slices, dendrites, angles });
  const seconds = (performance.now() - started) / 1000;
  ctx.stdout.write(
    values.json
      ? `${JSON.stringify({ scanId, path: r.path, truthPath: r.truthPath, angles, rows: slices, columns: size, seconds })}\n`
      : `wrote ${angles} projections of ${slices} rows × ${size} columns to ${r.path} (truth ${r.truthPath}) in ${seconds.toFixed(1)} s\n`,
  );
  return 0;
}

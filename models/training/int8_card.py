"""INT8 model card: the FP32 card's fields, the INT8 file's name, size and sha256, its held-out
metrics from `eval --json`, and a `quantization` record (base model, method, what was quantized,
calibration, accuracy delta against the FP32 model's `eval --json` on the same seeds).

  /usr/bin/python3 models/training/int8_card.py models/tnet.json models/tnet-int8.onnx \\
      FP32_EVAL.json INT8_EVAL.json --quantized "16 of 17 Conv" --kept-fp32 "the head Conv" ...
"""
import argparse, hashlib, json, os

p = argparse.ArgumentParser()
p.add_argument('card'); p.add_argument('onnx'); p.add_argument('fp32_eval'); p.add_argument('int8_eval')
p.add_argument('--quantized', required=True)
p.add_argument('--kept-fp32', nargs='*', default=[])
p.add_argument('--calibration', default='xct-sentinel simulate --dataset DIR --patches 256 --seed 1000 (training seeds 1000-1006)')
a = p.parse_args()
card = json.load(open(a.card))
f32, i8 = json.load(open(a.fp32_eval)), json.load(open(a.int8_eval))
if f32['scans'] != i8['scans']:
    raise SystemExit(f'{a.fp32_eval} and {a.int8_eval} were not run on the same scans')
data = open(a.onnx, 'rb').read()
name = os.path.splitext(os.path.basename(a.onnx))[0]
held = {k: i8[k] for k in ('iou', 'dice', 'mIoU', 'mDSC', 'patches', 'pitAsDendrite', 'bubbleAsDendrite', 'voxels', 'habits')}
held.update(seeds=i8['scans']['seeds'], size=i8['scans']['size'], slices=i8['scans']['slices'])
pick = lambda r: {k: r[k] for k in ('dice', 'mIoU', 'mDSC')} | {'needleRecall': r['habits']['needle']['recall']}
card.update(
    name=name, file=os.path.basename(a.onnx), sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
    description=f"{card['name']} {card['version']} quantized to INT8 (static, QDQ): the same weights, its convolutions computed in 8-bit integers by ONNX Runtime. " + card['description'],
    metrics={'heldOut': held},
    quantization={
        'base': {'name': card['name'], 'version': card['version'], 'sha256': card['sha256']},
        'method': 'static QDQ (QuantizeLinear/DequantizeLinear) written with python3-onnx by models/training/quantize_int8.py; ONNX Runtime fuses each DQ-Conv-Q into QLinearConv',
        'weights': 'int8 symmetric, per output channel; biases int32 at input scale x weight scale',
        'activations': 'uint8 asymmetric, per tensor, min/max over the calibration patches (calibrate-int8.mjs)',
        'quantized': a.quantized,
        'keptFp32': a.kept_fp32,
        'calibration': a.calibration,
        'accuracyDelta': {'seeds': i8['scans']['seeds'], 'fp32': pick(f32), 'int8': pick(i8)},
    },
)
with open(os.path.splitext(a.onnx)[0] + '.json', 'w') as out:
    json.dump(card, out, indent=2); out.write('\n')
print(json.dumps(card['quantization']['accuracyDelta']))

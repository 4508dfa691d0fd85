"""INT8 calibration, step 3 of 3: a QDQ copy of an FP32 ONNX model, for ONNX Runtime to run in INT8.

  /usr/bin/python3 models/training/quantize_int8.py FP32.onnx OUT.onnx RANGES.json [OPS] [EXCLUDE]

Each node of OPS (default Conv; comma-separated, also ConvTranspose, MatMul) not named in EXCLUDE
gets: its activation input and its output quantized to uint8 with the calibrated range (RANGES.json
from calibrate-int8.mjs: {tensor: [min, max]}; a tensor missing there gets [-4, 4], for speed
experiments only), its weight to int8 symmetric per output channel, its bias to int32 at input
scale x weight scale. ONNX Runtime fuses DequantizeLinear -> Conv -> QuantizeLinear into
QLinearConv. The shipped tnet-int8 was made with OPS Conv and EXCLUDE /head/Conv (models/README.md).
"""
import sys, json, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
src, dst = sys.argv[1], sys.argv[2]
ranges = json.load(open(sys.argv[3])) if len(sys.argv) > 3 and sys.argv[3] != '-' else {}
ops = set((sys.argv[4] if len(sys.argv) > 4 else 'Conv').split(','))
exclude = set(sys.argv[5].split(',')) if len(sys.argv) > 5 else set()
m = onnx.load(src); g = m.graph
inits = {i.name: i for i in g.initializer}
new_inits, new_nodes = [], []
qdq_done = {}
def act_qdq(name):
    if name in qdq_done: return qdq_done[name]
    lo, hi = ranges.get(name, [-4.0, 4.0])
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 255.0
    zp = int(np.clip(round(-lo / scale), 0, 255))
    s, z = name + '_qs', name + '_qz'
    new_inits.append(numpy_helper.from_array(np.array(scale, np.float32), s))
    new_inits.append(numpy_helper.from_array(np.array(zp, np.uint8), z))
    q, d = name + '_q', name + '_dq'
    new_nodes.append(helper.make_node('QuantizeLinear', [name, s, z], [q], name=name + '_Q'))
    new_nodes.append(helper.make_node('DequantizeLinear', [q, s, z], [d], name=name + '_DQ'))
    qdq_done[name] = (d, scale)
    return qdq_done[name]
def weight_dq(wname, axis):
    w = numpy_helper.to_array(inits[wname]).astype(np.float32)
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.maximum(np.abs(w).max(axis=red), 1e-8)
    scale = (amax / 127.0).astype(np.float32)
    shape = [1] * w.ndim; shape[axis] = -1
    wq = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    new_inits.append(numpy_helper.from_array(wq, wname + '_i8'))
    new_inits.append(numpy_helper.from_array(scale, wname + '_ws'))
    new_inits.append(numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), wname + '_wz'))
    new_nodes.append(helper.make_node('DequantizeLinear', [wname + '_i8', wname + '_ws', wname + '_wz'], [wname + '_wdq'], axis=axis, name=wname + '_WDQ'))
    return wname + '_wdq', scale
def bias_dq(bname, sx, sw):
    b = numpy_helper.to_array(inits[bname]).astype(np.float32)
    scale = (sx * sw).astype(np.float32)
    bq = np.round(b / scale).astype(np.int32)
    new_inits.append(numpy_helper.from_array(bq, bname + '_i32'))
    new_inits.append(numpy_helper.from_array(scale, bname + '_bs'))
    new_inits.append(numpy_helper.from_array(np.zeros_like(bq, dtype=np.int32), bname + '_bz'))
    new_nodes.append(helper.make_node('DequantizeLinear', [bname + '_i32', bname + '_bs', bname + '_bz'], [bname + '_bdq'], axis=0, name=bname + '_BDQ'))
    return bname + '_bdq'
out_map = {}  # original output -> node writes to tmp, Q/DQ gives original name
count = 0
for n in list(g.node):
    if n.op_type not in ops or n.name in exclude: continue
    if n.op_type == 'MatMul' and not (n.input[1] in inits): continue
    if n.op_type == 'MatMul' and n.input[0] in inits: continue
    x, sx = act_qdq(n.input[0])
    axis = {'Conv': 0, 'ConvTranspose': 1, 'MatMul': 1}[n.op_type]
    w, sw = weight_dq(n.input[1], axis)
    ins = [x, w]
    if len(n.input) > 2 and n.input[2]:
        ins.append(bias_dq(n.input[2], sx, sw))
    for i, v in enumerate(ins): n.input[i] = v
    # output Q/DQ: rename node output, add QDQ producing original name
    o = n.output[0]
    tmp = o + '_fp'
    n.output[0] = tmp
    lo, hi = ranges.get(o, [-4.0, 4.0]); lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 255.0; zp = int(np.clip(round(-lo / scale), 0, 255))
    new_inits.append(numpy_helper.from_array(np.array(scale, np.float32), o + '_os'))
    new_inits.append(numpy_helper.from_array(np.array(zp, np.uint8), o + '_oz'))
    new_nodes.append(helper.make_node('QuantizeLinear', [tmp, o + '_os', o + '_oz'], [o + '_oq'], name=o + '_OQ'))
    new_nodes.append(helper.make_node('DequantizeLinear', [o + '_oq', o + '_os', o + '_oz'], [o], name=o + '_ODQ'))
    qdq_done[o] = (o, scale)
    count += 1
g.initializer.extend(new_inits)
nodes = list(g.node) + new_nodes
# topological sort
produced = {i.name for i in g.input} | {i.name for i in g.initializer}
order, pending = [], nodes
while pending:
    rest = []
    for n in pending:
        if all((not i) or i in produced for i in n.input):
            order.append(n); produced.update(n.output)
        else: rest.append(n)
    if len(rest) == len(pending): raise SystemExit('cycle/unresolved: ' + rest[0].name)
    pending = rest
del g.node[:]; g.node.extend(order)
used = {i for n in g.node for i in n.input}
keep = [i for i in g.initializer if i.name in used]
del g.initializer[:]; g.initializer.extend(keep)
onnx.checker.check_model(m)
onnx.save(m, dst)
print('quantized', count, 'nodes ->', dst)

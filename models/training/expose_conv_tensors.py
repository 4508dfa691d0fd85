"""INT8 calibration, step 1 of 3: a copy of an ONNX model whose outputs also include every Conv's
input and output activation, and the list of those tensors (for calibrate-int8.mjs).

  /usr/bin/python3 models/training/expose_conv_tensors.py FP32.onnx EXPOSED.onnx NAMES.json
"""
import sys, json, onnx
from onnx import helper, TensorProto
src, dst, lst = sys.argv[1:4]
m = onnx.load(src); g = m.graph
inits = {i.name for i in g.initializer}
names = []
for n in g.node:
    if n.op_type == 'Conv':
        for t in (n.input[0], n.output[0]):
            if t not in inits and t not in names: names.append(t)
existing = {o.name for o in g.output}
for t in names:
    if t not in existing: g.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
onnx.save(m, dst); json.dump(names, open(lst, 'w'))
print(len(names), 'tensors')

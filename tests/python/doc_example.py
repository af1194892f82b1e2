#!/usr/bin/python3
"""Issue 3's "done when" program, written only from the axelera.runtime API doc: Context as a
context manager, load_model on model.json, inputs()/outputs() with unpadded_shape, padding,
scale and zero_point, device_connect(None, 1) per instance,
load_model_instance(model, num_sub_devices=1, aipu_cores=1), run from worker threads.

usage: doc_example.py MODEL_JSON [INSTANCES]
Prints one line per image: "image <k>: top5 <c1> <c2> ... <c5>".
"""

import sys
import threading

import numpy as np

import axelera.runtime as axr


def main(model_json, num_instances):
    rng = np.random.default_rng(1234)
    with axr.Context() as context:
        model = context.load_model(model_json)
        input_info = model.inputs()[0]
        output_info = model.outputs()[0]
        images = [rng.uniform(-1.0, 1.0, input_info.unpadded_shape).astype(np.float32)
                  for _ in range(8)]

        instances = []
        for _ in range(num_instances):
            connection = context.device_connect(None, 1)
            instances.append(connection.load_model_instance(model, num_sub_devices=1,
                                                            aipu_cores=1))

        results = {}

        def worker(instance, indices):
            for k in indices:
                src = images[k]
                quant = np.round((src / input_info.scale) + input_info.zero_point).clip(
                    -128, 127).astype(np.int8)
                padded = np.pad(quant, input_info.padding, constant_values=input_info.zero_point)
                out = np.zeros(output_info.shape, dtype=np.int8)
                instance.run([padded], [out])
                depadded = out[tuple(slice(b, -e if e else None) for b, e in output_info.padding)]
                dequant = (depadded.astype(np.float32) - output_info.zero_point) * output_info.scale
                results[k] = np.argsort(-dequant.ravel(), kind="stable")[:5]

        threads = [threading.Thread(target=worker, args=(inst, range(i, len(images), num_instances)))
                   for i, inst in enumerate(instances)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for k in sorted(results):
        print(f"image {k}: top5 " + " ".join(str(c) for c in results[k]))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4)

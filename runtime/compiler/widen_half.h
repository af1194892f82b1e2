// Rewrites a float16/bfloat16 (or float64) ONNX model into its float32 equivalent before the
// compiler reads it: the package is quantised to int8 from float32 whatever precision the model
// was exported in (onnxconverter-common's convert_float_to_float16, torch's .half()).
#pragma once

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

namespace axstream::compiler {

struct PrecisionConversion {
  std::vector<std::string> source_types;  // "float16", "bfloat16", "float64" the model used
  int initializers = 0;   // initializers and Constant/ConstantOfShape values made float32
  int casts_removed = 0;  // Casts that only changed the float precision (an Identity when the
                          // Cast wrote a graph output the model's own input also is)
  std::vector<std::string> inputs, outputs;  // graph inputs/outputs declared in such a type
  bool changed() const { return !source_types.empty(); }
  // "model is float16: compiled from its float32 equivalent (N initializers widened, M casts
  // removed); ..." -- empty when the model was float32 already.
  std::string summary() const;
};

// Every FLOAT16/BFLOAT16/DOUBLE initializer, Constant value, graph input/output/value_info type
// and Cast/Random*/EyeLike target type of `model` becomes FLOAT (widening is exact; float64 is
// rounded to float32, a value beyond float32's range is an InvalidArgument naming it). A Cast
// between two float types then converts nothing and is removed (its readers read its input).
// Integer and bool Casts stay; a Cast from an integer to half becomes one to float32. `label`
// ("model 'x.onnx'") prefixes errors.
PrecisionConversion widen_to_float32(onnx::ModelProto &model, const std::string &label);

}  // namespace axstream::compiler

#include "package_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "axstream/error.h"
#include "json.h"

namespace axstream::compiler {
namespace {

namespace fs = std::filesystem;
namespace json = runtime::json;

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

template <typename T, typename F>
std::string list(const std::vector<T> &items, F &&format) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) s += ", ";
    s += format(items[i]);
  }
  return s + "]";
}

std::string ints(const std::vector<int64_t> &v) {
  return list(v, [](int64_t x) { return std::to_string(x); });
}

void write_file(const fs::path &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out)
    throw InvalidArgument("package file " + path.string() + ": write failed (" +
                          std::strerror(errno) + ")");
}

// Removes the temporary directory unless the package was committed.
struct TempDir {
  fs::path path;
  bool committed = false;
  explicit TempDir(fs::path p) : path(std::move(p)) {}
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  // A moved-from TempDir no longer owns the directory.
  TempDir(TempDir &&other) noexcept : path(std::move(other.path)), committed(other.committed) {
    other.committed = true;
  }
  ~TempDir() {
    if (!committed) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

}  // namespace

std::string model_json_text(const PackageContents &c) {
  std::ostringstream s;
  s << "{\n"
    << "  \"format_version\": 1,\n"
    << "  \"name\": " << json::quote(c.name) << ",\n"
    << "  \"core_graph\": \"core.onnx\",\n"
    << "  \"batch\": " << c.batch << ",\n"
    << "  \"input_tensor_layout\": \"NHWC\",\n"
    << "  \"preamble_graph\": " << (c.has_preamble ? "\"preamble.onnx\"" : "null") << ",\n"
    << "  \"postamble_graph\": " << (c.has_postamble ? "\"postamble.onnx\"" : "null") << ",\n"
    << "  \"host_ops\": {";
  auto counts = [&s](const std::map<std::string, int> &ops) {
    bool first = true;
    for (const auto &[op, n] : ops) {
      s << (first ? "" : ", ") << json::quote(op) << ": " << n;
      first = false;
    }
  };
  if (c.has_preamble) {
    s << "\"preamble\": {";
    counts(c.preamble_ops);
    s << "}, ";
  }
  s << "\"postamble\": {";
  counts(c.host_ops);
  s << "}, \"core_float_nodes\": " << list(c.float_nodes, json::quote) << "}\n"
    << "}\n";
  return s.str();
}

std::string manifest_json_text(const PackageContents &c) {
  // Shapes are stored per item; the manifest's shape[0] is the package batch.
  // (the per-item shapes have shape[0] == 1; an original shape without a batch dimension grows
  // its first one, so its element count still matches the unpadded batch tensor's)
  auto batched = [&c](std::vector<int64_t> shape) {
    if (!shape.empty()) shape[0] *= c.batch;
    return shape;
  };
  auto shapes = [&](const std::vector<PackageTensor> &t) {
    return list(t, [&](const PackageTensor &x) { return ints(batched(x.shape)); });
  };
  auto original_shapes = [&](const std::vector<PackageTensor> &t) {
    return list(t, [&](const PackageTensor &x) { return ints(batched(x.original_shape)); });
  };
  auto pads = [](const std::vector<PackageTensor> &t) {
    return list(t, [](const PackageTensor &x) { return ints(x.padding); });
  };
  auto params = [](const std::vector<PackageTensor> &t) {
    return list(t, [](const PackageTensor &x) {
      // Appended, not `"[" + number(...)`: GCC 12 misreads that as an overlapping memcpy
      // (-Wrestrict, GCC bug 105329).
      std::string pair = "[";
      pair += number(x.params.scale);
      pair += ", ";
      pair += std::to_string(x.params.zero_point);
      pair += "]";
      return pair;
    });
  };
  auto names = [](const std::vector<PackageTensor> &t) {
    return list(t, [](const PackageTensor &x) { return json::quote(x.name); });
  };
  auto dtypes = [](const std::vector<PackageTensor> &t) {
    return list(t, [](const PackageTensor &) { return std::string("\"int8\""); });
  };
  auto doubles = [](const std::vector<double> &v) { return list(v, number); };
  std::ostringstream s;
  s << "{\n"
    << "  \"manifest_version\": 1,\n"
    << "  \"model_lib_file\": \"model.json\",\n"
    << "  \"quantized_model_file\": \"core.onnx\",\n"
    << "  \"input_shapes\": " << shapes(c.inputs) << ",\n"
    << "  \"output_shapes\": " << shapes(c.outputs) << ",\n"
    << "  \"input_shapes_original\": " << original_shapes(c.inputs) << ",\n"
    << "  \"output_shapes_original\": " << original_shapes(c.outputs) << ",\n"
    << "  \"quantize_params\": " << params(c.inputs) << ",\n"
    << "  \"dequantize_params\": " << params(c.outputs) << ",\n"
    << "  \"n_padded_ch_inputs\": " << pads(c.inputs) << ",\n"
    << "  \"n_padded_ch_outputs\": " << pads(c.outputs) << ",\n"
    << "  \"preprocess_graph\": " << (c.has_preamble ? "\"preamble.onnx\"" : "null") << ",\n"
    << "  \"postprocess_graph\": " << (c.has_postamble ? "\"postamble.onnx\"" : "null") << ",\n"
    << "  \"input_names\": " << names(c.inputs) << ",\n"
    << "  \"output_names\": " << names(c.outputs) << ",\n"
    << "  \"input_dtypes\": " << dtypes(c.inputs) << ",\n"
    << "  \"output_dtypes\": " << dtypes(c.outputs) << ",\n"
    << "  \"input_preprocess\": "
    << list(c.input_preprocess,
            [&](const InputPreprocessInfo &p) {
              return "{\"color_format\": " + json::quote(p.color_format) +
                     ", \"pixel_scale\": " + number(p.pixel_scale) +
                     ", \"mean\": " + doubles(p.mean) + ", \"std\": " + doubles(p.std) +
                     (p.layout.empty() ? "" : ", \"layout\": " + json::quote(p.layout)) + "}";
            })
    << ",\n";
  if (c.has_preamble)  // the core's inputs are the preamble's outputs, shaped like the model's
    s << "  \"input_info\": " << list(c.inputs, [&](const PackageTensor &t) {
      return "{\"original_shape\": " + ints(batched(t.original_shape)) +
             ", \"layout\": " + json::quote(t.layout) + "}";
    }) << ",\n";
  s << "  \"output_info\": "
    << list(c.outputs,
            [&](const PackageTensor &t) {
              return "{\"original_shape\": " + ints(batched(t.original_shape)) +
                     ", \"layout\": " + json::quote(t.layout) + "}";
            })
    << ",\n"
    << "  \"compiler\": {\"tool\": \"axcompile\", \"version\": \"0.1.0\", \"source_model\": "
    << json::quote(c.source_model) << ", \"calibration_method\": " << json::quote(c.calibration_method)
    << ", \"calibration_images\": " << c.calibration_images
    << ", \"calibration_resize\": " << json::quote(c.calibration_resize) << "}\n"
    << "}\n";
  return s.str();
}

namespace {

fs::path package_target(const std::string &directory) {
  fs::path target = fs::path(directory).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_directory(target, ec))
    throw InvalidArgument("--output-dir " + target.string() + ": exists and is not a directory");
  // The package replaces the whole directory: only an earlier package (its model.json) or an
  // empty directory may be replaced, never a folder of the user's files (the calibration
  // images, the source model, a home directory).
  if (fs::is_directory(target, ec) && !fs::exists(target / "model.json", ec) &&
      !fs::is_empty(target, ec)) {
    std::string names;
    size_t count = 0;
    for (const auto &entry : fs::directory_iterator(target, ec)) {
      if (count++ < 3)
        names += (names.empty() ? "'" : ", '") + entry.path().filename().string() + "'";
    }
    if (count > 3) names += ", ...";
    throw InvalidArgument("--output-dir " + target.string() +
                          ": exists and is not a model package (no model.json; it holds " + names +
                          "): the package would replace the whole directory, so give a new or "
                          "empty directory or an earlier package");
  }
  if (!target.parent_path().empty()) fs::create_directories(target.parent_path(), ec);
  return target;
}

// The package is written into this sibling of the target first (removed unless committed).
TempDir make_temp_sibling(const fs::path &target) {
  TempDir temp{fs::path(target.string() + '.' + std::to_string(::getpid()) + ".tmp")};
  std::error_code ec;
  fs::remove_all(temp.path, ec);
  if (!fs::create_directory(temp.path, ec))
    throw InvalidArgument("--output-dir " + target.string() + ": cannot create " +
                          temp.path.string() + " (" + ec.message() + ")");
  return temp;
}

}  // namespace

void check_package_directory(const std::string &directory) {
  make_temp_sibling(package_target(directory));  // removed again at once
}

uint64_t write_package_atomically(const std::string &directory, const PackageContents &c) {
  fs::path target = package_target(directory);
  TempDir temp = make_temp_sibling(target);
  std::error_code ec;
  write_file(temp.path / "core.onnx", c.core_bytes);
  if (c.has_preamble) write_file(temp.path / "preamble.onnx", c.preamble_bytes);
  if (c.has_postamble) write_file(temp.path / "postamble.onnx", c.postamble_bytes);
  write_file(temp.path / "model.json", model_json_text(c));
  write_file(temp.path / "manifest.json", manifest_json_text(c));
  uint64_t bytes = 0;
  for (const auto &entry : fs::directory_iterator(temp.path)) bytes += entry.file_size();

  // Swap in: the old package (if any) moves aside, the new one takes its name, the old goes.
  fs::path old(target.string() + "." + std::to_string(::getpid()) + ".old");
  bool had_old = fs::exists(target, ec);
  if (had_old) {
    fs::rename(target, old, ec);
    if (ec)
      throw InvalidArgument("--output-dir " + target.string() + ": cannot replace it (" +
                            ec.message() + ")");
  }
  fs::rename(temp.path, target, ec);
  if (ec) {
    if (had_old) fs::rename(old, target, ec);
    throw InvalidArgument("--output-dir " + target.string() +
                          ": cannot move the package into place");
  }
  temp.committed = true;
  if (had_old) fs::remove_all(old, ec);
  return bytes;
}

}  // namespace axstream::compiler

# Sourced by the pipelines/*.sh demos: where the build, the cache (models, media) and the outputs
# are, from AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream) and
# AXSTREAM_OUT (default out/), and the folder of opencv-doc's sample media.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${AXSTREAM_BUILD:-$here/build}
cache=${AXSTREAM_CACHE:-$HOME/.cache/axstream}
out=${AXSTREAM_OUT:-$here/out}
data=$cache/opencv-doc/usr/share/doc/opencv-doc/examples/data

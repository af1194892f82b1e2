# Sourced by the pipelines/*.sh demos: where the build, the cache (models, media) and the outputs
# are, from AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream) and
# AXSTREAM_OUT (default out/), and the folder of opencv-doc's sample media.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${AXSTREAM_BUILD:-$here/build}
cache=${AXSTREAM_CACHE:-$HOME/.cache/axstream}
out=${AXSTREAM_OUT:-$here/out}
data=$cache/opencv-doc/usr/share/doc/opencv-doc/examples/data

# The script's name for its messages ("face-detect: ...").
script_name=$(basename "$0" .sh)

# Prints MESSAGE as "<script>: MESSAGE" on stderr and exits with STATUS (1: bad input or a failed
# run, 2: bad command line).
die() {  # STATUS MESSAGE...
  local status=$1
  shift
  echo "$script_name: $*" >&2
  exit "$status"
}

# --help: the comment block at the top of the script, without its '#'.
print_usage() {
  sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
}

# Called for an option that takes a value with the remaining arguments ("$@" at the option).
need_value() {  # OPTION [VALUE...]
  (($# >= 2)) && [[ -n $2 && $2 != --* ]] || die 2 "$1 needs a value (see --help)"
}

# Checks that VALUE is a decimal integer from MIN to MAX (default 2^31-1, a GStreamer int
# property's limit); use it as $((10#VALUE)). Leading zeros are decimal (bash read 08 as a bad
# octal number) and a number too long for bash's arithmetic is refused before it wraps around
# (detect.sh --frames 99999999999999999999 ran the whole video).
require_uint() {  # OPTION VALUE MIN [MAX]
  local max=${4:-2147483647}
  [[ $2 =~ ^[0-9]+$ ]] && ((10#$3 <= 10#${2:0:18})) || die 2 "$1 '$2': expected an integer >= $3"
  ((${#2} <= 18 && 10#$2 <= max)) || die 2 "$1 '$2': expected an integer from $3 to $max"
}

require_package() {  # DIR HINT
  [[ -f "$1/model.json" ]] || die 1 "no model package at $1 (expected $1/model.json; $2)"
}

# Checks that FILE is an image or a video by GStreamer's typefind and, for a video, that a first
# frame decodes (pipelines/probe_media.py, with a time limit: on a damaged video decodebin
# sometimes drops the demuxer's error and a pipeline then waits forever).
require_media() {  # FILE KIND(video|image) [HINT]
  local file=$1 kind=$2 hint=${3:+ ($3)} type why
  [[ ! -d $file ]] || die 1 "$file is a directory, not $([[ $kind == image ]] && echo an || echo a) $kind file"
  [[ -f $file ]] || die 1 "no $kind at $file$hint"
  [[ -r $file ]] || die 1 "$kind $file is not readable"
  [[ -s $file ]] || die 1 "$kind $file is empty"
  # The probes' own output only: without the caller's GStreamer debug log and tracers.
  local quiet=(env -u GST_DEBUG -u GST_DEBUG_FILE -u GST_TRACERS)
  type=$("${quiet[@]}" gst-typefind-1.0 "$file" 2>&1) || true
  type=${type#"$file - "}
  case $kind:$type in
    video:video/* | video:application/ogg | video:application/x-3gp | video:application/mxf) ;;
    image:image/*) ;;
    image:*) die 1 "$file is not an image (GStreamer's typefind: ${type%%,*})" ;;
    *) die 1 "$file is not a video (GStreamer's typefind: ${type%%,*})" ;;
  esac
  [[ $kind == video ]] || return 0  # images go through a decoder, no demuxer
  why=$("${quiet[@]}" /usr/bin/python3 "$here/pipelines/probe_media.py" -- "$file" 2>&1) ||
    die 1 "$why"
}

# Checks that DIR can be created and written (the outputs go there).
require_output_dir() {  # DIR
  mkdir -p "$1" 2>/dev/null && [[ -w $1 ]] ||
    die 1 "cannot write the outputs into $1 (set AXSTREAM_OUT)"
}

# Runs gst-launch-1.0 with ARGS and returns its status, or 130 after a Ctrl-C. Ctrl-C reaches
# the whole foreground group: gst-launch-1.0 then ends the stream (-e) or stops, and exits 0 as
# if the video had ended, and the script went on to report a finished run (ocr.sh went on to
# the next image). With the trap, bash waits for gst-launch-1.0 to finish cleanly first.
launch() {  # gst-launch-1.0 ARGS...
  local interrupted=0 status=0
  trap 'interrupted=1' INT
  gst-launch-1.0 "$@" || status=$?
  trap - INT
  if ((interrupted)); then return 130; fi
  return "$status"
}

# Puts the build's plugin first on GST_PLUGIN_PATH and checks that GStreamer finds the axelera
# elements (there, or installed), instead of gst-launch-1.0's 'no element "axpreprocess"'.
use_plugin() {
  export GST_PLUGIN_PATH=$build/gst/elements${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}
  env -u GST_DEBUG -u GST_DEBUG_FILE -u GST_TRACERS gst-inspect-1.0 axelera >/dev/null 2>&1 ||
    die 1 "GStreamer finds no axelera plugin (not in $build/gst/elements nor installed;" \
      "run scripts/setup.sh, or set AXSTREAM_BUILD)"
}

#!/bin/sh
# Run by `meson install` (meson.build): refreshes the dynamic linker's cache, so a program built
# with `pkg-config axruntime` runs at once when libdir is one that ld.so.conf lists (Debian:
# /usr/local/lib/x86_64-linux-gnu, the default prefix's). Without it such a program stops with
# "libaxruntime.so.1: cannot open shared object file" until someone runs ldconfig; Meson 1.0 does
# not run it. Nothing to do for a staged (DESTDIR) install or a dry run; a non-root user is told.
set -eu
case ${1:-} in
  '') ;;
  -h|--help) sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; exit 0 ;;
  *) echo "install-ldconfig.sh: unexpected argument '$1' (it takes none; meson install runs it)" >&2
     exit 2 ;;
esac
[ -n "${DESTDIR:-}" ] && exit 0
[ -n "${MESON_INSTALL_DRY_RUN:-}" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "axstream: not root, so the dynamic linker's cache was not refreshed; run 'sudo ldconfig'" \
    "if programs built against libaxruntime do not find it" >&2
  exit 0
fi
PATH=$PATH:/usr/sbin:/sbin exec ldconfig

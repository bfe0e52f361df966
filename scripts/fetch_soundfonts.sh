#!/usr/bin/env bash
# The soundfonts of #30's levers, from Debian (apt-get download + dpkg -x, nothing installed):
#   DIR/FluidR3_GM.sf2       (fluid-soundfont-gm) the held-out timbres: evaluation only, never trained on
#   DIR/sf_GMbank.sf2        (csound-soundfont)   training timbres of the "more timbres" lever
#   DIR/OPL-3_FM_128M.sf2    (opl3-soundfont)     training timbres of the "more timbres" lever
#   bash scripts/fetch_soundfonts.sh DIR        # about 225 MB of packages
set -euo pipefail
DIR=${1:?usage: bash scripts/fetch_soundfonts.sh DIR}
mkdir -p "$DIR/.debs" && DIR=$(cd "$DIR" && pwd)
for package in fluid-soundfont-gm csound-soundfont opl3-soundfont; do
  ls "$DIR/.debs/${package}"_*.deb >/dev/null 2>&1 || (cd "$DIR/.debs" && apt-get download "$package" >/dev/null) || {
    echo "error: apt-get download $package failed: run apt-get update, or check the network" >&2; exit 1; }
  rm -rf "$DIR/.unpacked" && dpkg -x "$DIR/.debs/${package}"_*.deb "$DIR/.unpacked"
  find "$DIR/.unpacked" -name '*.sf2' -type f -exec cp {} "$DIR/" \;
done
rm -rf "$DIR/.unpacked"
ls -l "$DIR"/*.sf2

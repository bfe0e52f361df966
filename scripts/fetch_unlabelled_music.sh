#!/usr/bin/env bash
# The unlabelled real recordings of #30's self-supervision lever: the music of two Debian
# game-data packages that neither the real-audio benchmark (scripts/fetch_game_music.sh)
# nor its six held-back packages use (supertuxkart-data, lincity-ng-data), without each
# track's sped-up "_fast" / "_f" copy. apt-get download + dpkg -x, nothing installed.
#   bash scripts/fetch_unlabelled_music.sh DIR        # about 670 MB of packages, 34 tracks (31 + 3)
set -euo pipefail
DIR=${1:?usage: bash scripts/fetch_unlabelled_music.sh DIR}
mkdir -p "$DIR/.debs" && DIR=$(cd "$DIR" && pwd)
for package in supertuxkart-data lincity-ng-data; do
  ls "$DIR/.debs/${package}"_*.deb >/dev/null 2>&1 || (cd "$DIR/.debs" && apt-get download "$package" >/dev/null) || {
    echo "error: apt-get download $package failed: run apt-get update, or check the network" >&2; exit 1; }
  rm -rf "$DIR/.unpacked" && dpkg -x "$DIR/.debs/${package}"_*.deb "$DIR/.unpacked"
  mkdir -p "$DIR/$package"
  find "$DIR/.unpacked" -ipath '*music*' -iname '*.ogg' | grep -v -e '_f\.ogg$' -e '_fast\.ogg$' |
    while read -r f; do cp "$f" "$DIR/$package/"; done
  echo "$package: $(ls "$DIR/$package" | wc -l) tracks"
done
rm -rf "$DIR/.unpacked"

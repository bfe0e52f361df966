#!/usr/bin/env bash
# The real-audio benchmark's collection (musicrep_jax/tools/real_audio.py): the music of six
# Debian game-data packages, downloaded and unpacked without installing anything
# (apt-get download + dpkg -x), one folder per game: DIR/<game>/*.ogg.
#   bash scripts/fetch_game_music.sh DIR        # about 950 MB of packages, 91 tracks
# These six packages are the benchmark's and must not be used to train or tune anything.
set -euo pipefail
DIR=${1:?usage: bash scripts/fetch_game_music.sh DIR}
mkdir -p "$DIR/.debs" "$DIR/.unpacked"
DIR=$(cd "$DIR" && pwd)
# package  game  the music's folder inside the package (every .ogg under it)
MUSIC=(
  "hedgewars-data       hedgewars       usr/share/games/hedgewars/Data/Music"
  "widelands-data       widelands       usr/share/games/widelands/data/music"
  "extremetuxracer-data extremetuxracer usr/share/games/etr/music"
  "openclonk-data       openclonk       usr/share/games/openclonk/Music.ocg"
  "megaglest-data       megaglest       usr/share/games/megaglest"
  "xmoto-data           xmoto           usr/share/games/xmoto/Textures/Musics"
)
command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  echo "error: apt-get and dpkg are needed (a Debian or Ubuntu machine)" >&2; exit 2; }
for row in "${MUSIC[@]}"; do
  read -r package game folder <<< "$row"
  if ! ls "$DIR/.debs/${package}"_*.deb >/dev/null 2>&1; then
    echo "downloading $package"
    (cd "$DIR/.debs" && apt-get download "$package" >/dev/null) || {
      echo "error: apt-get download $package failed: run apt-get update, or check the network" >&2; exit 1; }
  fi
  rm -rf "$DIR/.unpacked/$package" && dpkg -x "$DIR/.debs/${package}"_*.deb "$DIR/.unpacked/$package"
  rm -rf "$DIR/$game" && mkdir -p "$DIR/$game"
  # megaglest keeps its music in several folders named music (the menu's, each faction's)
  find "$DIR/.unpacked/$package/$folder" -iname '*.ogg' | { [ "$game" = megaglest ] && grep -i '/music/' || cat; } |
    sort | while read -r f; do cp "$f" "$DIR/$game/$(echo "${f#"$DIR/.unpacked/$package/$folder/"}" | tr / _)"; done
  echo "$game: $(ls "$DIR/$game" | wc -l) tracks"
  rm -rf "$DIR/.unpacked/$package"
done
ls "$DIR"/*/ > "$DIR/FILES.txt"
echo "the collection is in $DIR ($(find "$DIR" -mindepth 2 -maxdepth 2 -name '*.ogg' | wc -l) tracks; list: $DIR/FILES.txt)"

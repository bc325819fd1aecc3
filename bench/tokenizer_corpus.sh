#!/usr/bin/env bash
# Builds a mixed-text corpus (about 4 MB) for the tokenizer benchmark from files
# every Debian system with the build dependencies has: English prose (licence
# texts), C++ code (libstdc++ headers) and prose in ~25 languages including
# Chinese, Japanese and Russian (GnuPG help texts), interleaved in blocks.
# Also writes OUTPUT.english, OUTPUT.code and OUTPUT.intl (the parts alone).
#
#   bench/tokenizer_corpus.sh /tmp/corpus.txt
#   build/pocket tokenize -m ../shared/golden/vocab-qwen3-qwen35.gguf --bench /tmp/corpus.txt
set -eu
out=${1:?usage: tokenizer_corpus.sh OUTPUT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# First $2 bytes of file $1, cut back to a line end (never inside a character).
take() { head -c "$2" "$1" | sed '$d'; }
# File $1 repeated until it has at least $2 bytes.
grow() { : > "$1.big"; while [ "$(stat -c %s "$1.big")" -lt "$2" ]; do cat "$1" >> "$1.big"; done; }

cat /usr/share/common-licenses/{Apache-2.0,Artistic,BSD,GFDL-1.3,GPL-2,GPL-3,LGPL-2,LGPL-2.1,LGPL-3,MPL-2.0} \
  > "$tmp/english" 2>/dev/null || true
grow "$tmp/english" 1300000
take "$tmp/english.big" 1300000 > "$tmp/en"

find /usr/include/c++/12/bits -name '*.h' | sort | xargs cat > "$tmp/code.all"
take "$tmp/code.all" 1500000 > "$tmp/code"

cat /usr/share/gnupg/help.*.txt > "$tmp/intl"
grow "$tmp/intl" 1200000
take "$tmp/intl.big" 1200000 > "$tmp/in"

# Interleave line-aligned blocks of at most 64 KB.
split -C 65536 -d -a 4 "$tmp/en" "$tmp/a."
split -C 65536 -d -a 4 "$tmp/code" "$tmp/b."
split -C 65536 -d -a 4 "$tmp/in" "$tmp/c."
: > "$out"
for i in $(seq -f %04g 0 99); do
  for part in a b c; do
    if [ -f "$tmp/$part.$i" ]; then cat "$tmp/$part.$i" >> "$out"; fi
  done
done
# The three parts alone too, for per-kind figures.
cp "$tmp/en" "$out.english"; cp "$tmp/code" "$out.code"; cp "$tmp/in" "$out.intl"
ls -l "$out" "$out".*

#!/bin/sh
# Dumps the King James Bible from the Debian package bible-kjv (its text is
# stored compressed in /usr/lib/bible.data) into .cache/debian/kjv.txt, one
# verse per line ("Ge1:1 In the beginning ...") and a blank line between
# chapters, so that a paragraph (a corpus document) is a chapter.  For the
# corpus tests, demo and benchmark; without `bible` they skip this source.
set -u
dest="$(cd "$(dirname "$0")/.." && pwd)/.cache/debian"
[ -s "$dest/kjv.txt" ] && exit 0
command -v bible >/dev/null 2>&1 || { echo "warning: no 'bible' program (package bible-kjv)" >&2; exit 0; }
mkdir -p "$dest"
bible -f "Gen1:1-Rev22:21" |
    awk '{ split($1, r, ":"); if (NR > 1 && r[1] != last) print ""; last = r[1]; print }' > "$dest/kjv.txt.tmp" && mv "$dest/kjv.txt.tmp" "$dest/kjv.txt"
exit 0

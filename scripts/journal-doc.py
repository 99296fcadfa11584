#!/usr/bin/env python3
"""Copies the journal format from the module docs of
crates/journal/src/lib.rs into docs/STORAGE_FORMAT.md (the section
"The broker's journal"), so the two never disagree. --check fails when
they differ."""
import re, sys

src = open('crates/journal/src/lib.rs').read().split('\n')
start = next(i for i, l in enumerate(src) if l.startswith('//! A journal is a strata-store log directory'))
end = next(i for i, l in enumerate(src) if 'decoding never panics.' in l)
body = '\n'.join(l[4:] if l.startswith('//! ') else l[3:] for l in src[start:end + 1])
body = re.sub(r'\(\[`JournalError::Malformed`\], naming the\s*record\'s offset\)',
              "(the broker refuses to start, naming the record's offset)", body)
body = re.sub(r'\[`Entry::(\w+)`\]', r'`\1`', body)
body = re.sub(r'\[`(\w+)`\]', r'`\1`', body)
section = """## The broker's journal: what the records hold

The broker keeps everything it must remember across a restart as records
of one log (the format above), each record one entry. The log lives in
`DATA_DIR/log/` or `DATA_DIR/log-N/`: the file `DATA_DIR/CURRENT` holds the
name of the live one (a compaction writes `log-N+1/` and switches `CURRENT`
by rename; without `CURRENT` the log is `log/`). `strata inspect DATA_DIR`
prints the records. The source of truth is the module
documentation of `crates/journal/src/lib.rs`; `scripts/journal-doc.py`
copies it here.

""" + body + "\n\n"
doc = open('docs/STORAGE_FORMAT.md').read()
new = re.sub(r"## The broker's journal: what the records hold\n.*?(?=## Version rule)", lambda _: section, doc, flags=re.S)
if '--check' in sys.argv:
    if new != doc:
        sys.exit('docs/STORAGE_FORMAT.md is out of date: run scripts/journal-doc.py')
else:
    open('docs/STORAGE_FORMAT.md', 'w').write(new)

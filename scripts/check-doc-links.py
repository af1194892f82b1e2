#!/usr/bin/env python3
"""Checks that every relative Markdown link in README.md and docs/*.md resolves: the file exists
and, for `file.md#anchor` or `#anchor`, the anchor is a heading of that file (GitHub's slug
rules). Usage: scripts/check-doc-links.py [FILE.md...]; exit 1 and one line per broken link."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CommonMark: the destination has no spaces and only balanced parentheses, then an optional title
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(((?:[^()\s]|\([^()\s]*\))+)(?:\s+"[^"]*")?\)')


def strip_code(text):
    """Text without fenced/indented code blocks and inline code (links there are not links)."""
    out, fenced = [], False
    for line in text.split('\n'):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            out.append('')
            continue
        if fenced or line.startswith('    ') or line.startswith('\t'):
            out.append('')
            continue
        out.append(re.sub(r'`[^`]*`', '', line))
    return out


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r'[^\w\- ]', '', s)
    return s.replace(' ', '-')


def anchors(path):
    """GitHub's heading anchors of a Markdown file (repeats get -1, -2, ...)."""
    seen, result = {}, set()
    for line in strip_code(open(path, encoding='utf-8').read()):
        m = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not m:
            continue
        base = slug(re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', m.group(1)))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f'{base}-{n}')
    return result


def check(path):
    broken = []
    for lineno, line in enumerate(strip_code(open(path, encoding='utf-8').read()), 1):
        for target in LINK.findall(line):
            if re.match(r'[a-z][a-z0-9+.-]*:', target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition('#')
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            where = f'{os.path.relpath(path, ROOT)}:{lineno}: {target}'
            if not os.path.exists(dest):
                broken.append(f'{where}: no file {os.path.relpath(dest, ROOT)}')
            elif anchor and dest.endswith('.md') and anchor not in anchors(dest):
                broken.append(f'{where}: no heading with anchor #{anchor} in {os.path.relpath(dest, ROOT)}')
    return broken


def main(argv):
    files = argv[1:] or [os.path.join(ROOT, 'README.md')] + sorted(
        os.path.join(ROOT, 'docs', f) for f in os.listdir(os.path.join(ROOT, 'docs')) if f.endswith('.md'))
    broken, links = [], 0
    for f in files:
        links += sum(len(LINK.findall(line)) for line in strip_code(open(f, encoding='utf-8').read()))
        broken += check(f)
    for b in broken:
        print(b)
    print(f'{len(files)} files, {links} links, {len(broken)} broken')
    return 1 if broken else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))

"""The result tables the README and docs/ show are `report`'s output on the records in results/,
to the byte: each sits between a comment that names the command and an end comment."""

import glob
import os
import re
import shlex
import subprocess
import sys

from tests.helpers import REPO

# <!-- python -m alexnet_jax.report ARGS -->, the table, <!-- end of report -->.
GENERATED = re.compile(r'<!-- python -m alexnet_jax\.report (?P<args>[^\n]*?) -->\n'
                       r'(?P<table>.*?)<!-- end of report -->', re.S)
PAGES = ['README.md', *sorted(os.path.relpath(p, REPO)
                              for p in glob.glob(os.path.join(REPO, 'docs', '*.md')))]


def generated_tables() -> list[tuple[str, str, str]]:
  """(page, report arguments, table) of every generated table."""
  tables = []
  for page in PAGES:
    with open(os.path.join(REPO, page)) as f:
      tables += [(page, m['args'], m['table']) for m in GENERATED.finditer(f.read())]
  return tables


def report_output(args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'alexnet_jax.report', *shlex.split(args)],
                        cwd=REPO, capture_output=True, text=True, timeout=120)


def test_every_generated_table_is_what_report_prints_from_the_records():
  tables = generated_tables()
  # The README's claims table is the default output, as its users type it.
  assert ('README.md', 'results/ --format=markdown') in [(page, args) for page, args, _ in tables]
  for page, args, table in tables:
    result = report_output(args)
    assert result.returncode == 0, (page, args, result.stderr[-2000:])
    assert result.stdout.strip() == table.strip(), (
        f'{page}: the table of `report {args}` differs from what it prints now; '
        '`python -m tests.test_docs` writes it in.')


def regenerate() -> None:
  """Writes report's output into every generated table of the README and docs/."""
  for page in PAGES:
    path = os.path.join(REPO, page)
    with open(path) as f:
      text = f.read()
    def table(match: re.Match) -> str:
      result = report_output(match['args'])
      if result.returncode:
        raise SystemExit(f'{page}: report {match["args"]} failed:\n{result.stderr[-2000:]}')
      # By position: an empty table (a new one) is a substring of every text.
      start, end = match.start('table') - match.start(), match.end('table') - match.start()
      return match[0][:start] + result.stdout.strip() + '\n' + match[0][end:]
    new_text = GENERATED.sub(table, text)
    if new_text != text:
      with open(path, 'w') as f:
        f.write(new_text)
      print(f'{page}: tables regenerated')


if __name__ == '__main__':
  regenerate()

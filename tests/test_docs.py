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


def test_every_generated_table_is_what_report_prints_from_the_records():
  tables = generated_tables()
  assert any(page == 'README.md' and '--table=claims' in args for page, args, _ in tables)
  for page, args, table in tables:
    result = subprocess.run([sys.executable, '-m', 'alexnet_jax.report', *shlex.split(args)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (page, args, result.stderr[-2000:])
    assert result.stdout.strip() == table.strip(), (
        f'{page}: the table of `report {args}` differs from what it prints now; paste its '
        'output in.')

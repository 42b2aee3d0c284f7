"""Every shell command that the README and docs/ show works as written.

The commands come from the pages' code blocks. Each is classified below: run here (on generated
data under a temporary $HOME, with a long run shortened by the flags the table appends), or not
run because it needs real data, a cluster or hours (then only checked: its module exists, each
flag is one the module defines, each --config.KEY is a key of its config). A command that no
rule classifies fails the test, so a new command is classified when it is written.
"""

import dataclasses
import functools
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from alexnet_jax import naming
from launch import sweep
from tests.helpers import REPO, write_image_folder

PAGES = ['README.md', *sorted(os.path.relpath(p, REPO)
                              for p in glob.glob(os.path.join(REPO, 'docs', '*.md')))]
RUN, NOT_RUN, TEMPLATE, THE_TESTS = 'run', 'not run', 'template', 'the tests'


@dataclasses.dataclass(frozen=True)
class Rule:
  page: str
  start: str  # A regular expression that the command's start matches.
  kind: str
  why: str = ''  # Why it is not run here.
  shorten: tuple[str, ...] = ()  # Flags appended in CI: the same command, shorter.
  expect: tuple[str, ...] = ()  # Paths under the working folder or $HOME it must leave.
  # Run again with these flags instead of `shorten`, it must say this (the README's "run it
  # again and it resumes").
  again: tuple[str, ...] = ()
  again_says: str = ''


RULES = [
    # The README.
    Rule('README.md', r'pip install -r requirements\.txt$', RUN),
    Rule('README.md', r'python -m alexnet_jax\.main --config=configs/relu_vs_tanh\.py '
         r'--config\.dataset\.name=synthetic$', RUN, shorten=('--config.num_epochs=1',),
         expect=('runs/relu_vs_tanh/18pct/name=synthetic/checkpoints',),
         again=('--config.num_epochs=2',), again_says='Resumed from the checkpoint at step 2'),
    Rule('README.md', r'python -m alexnet_jax\.main --config=configs/relu_vs_tanh\.py$', NOT_RUN,
         'TFDS downloads CIFAR-10 (offline it stops in seconds; test_input_pipeline holds that)'),
    Rule('README.md', r'python -m pytest -q tests$', THE_TESTS),
    Rule('README.md', r'python -m alexnet_jax\.main --config=configs/NAME\.py', TEMPLATE),
    Rule('README.md', r'python -m alexnet_jax\.main --config=configs/relu_vs_tanh\.py '
         r'--config\.dataset\.name=image_folder', RUN, shorten=('--config.num_epochs=1',),
         expect=('runs/relu_vs_tanh/18pct/name=image_folder/checkpoints',)),
    Rule('README.md', r'python -m alexnet_jax\.write_image_stats', RUN,
         expect=('data/cifar10_stats.json', 'data/cifar10_stats.mean_image.npy')),
    Rule('README.md', r'python -m launch\.local', NOT_RUN, 'imagenette, about 70 min a run'),
    Rule('README.md', r'python -m launch\.(slurm|tpu) .*--dry_run$', RUN),
    Rule('README.md', r'python -m alexnet_jax\.report results/', RUN),
    # docs/.
    Rule('docs/accelerators.md', r'XLA_FLAGS=\S+ python -m alexnet_jax\.main', NOT_RUN,
         "AlexNet at 227 px in two processes, minutes on 2 cores (test_parallel's two-process "
         'test runs the same path on the Figure-1 net)'),
    Rule('docs/accelerators.md', r'python -m alexnet_jax\.compile_check', TEMPLATE),
    Rule('docs/cifar10_notes.md', r'python -m launch\.local', NOT_RUN, 'CIFAR-10, hours'),
    Rule('docs/cifar10_notes.md', r'python -m alexnet_jax\.report', NOT_RUN,
         'reads the records the launches above it write'),
    Rule('docs/claims.md', r'python -m alexnet_jax\.report results/$', RUN),
    Rule('docs/claims.md', r'python -m launch\.local', NOT_RUN, 'imagenette, hours'),
    Rule('docs/cuda_convnet_cifar.md', r'python -m (alexnet_jax\.main|launch\.local)', NOT_RUN,
         'CIFAR-10, hours'),
    Rule('docs/cuda_convnet_cifar.md', r'python -m alexnet_jax\.report', NOT_RUN,
         'reads the sweeps the launches above it run'),
    Rule('docs/imagenette.md', r'git clone ', NOT_RUN, 'downloads imagenette'),
    Rule('docs/imagenette.md', r'python -m alexnet_jax\.write_image_stats '
         r'--config=configs/default\.py:imagenette_131', RUN, expect=('data/imagenette_148.json',)),
    Rule('docs/imagenette.md', r'python -m alexnet_jax\.write_image_stats '
         r'--config=configs/default\.py:imagenette ', RUN, expect=('data/imagenette_144.json',)),
    Rule('docs/imagenette.md', r'python -m launch\.local', NOT_RUN, 'imagenette, hours'),
    Rule('docs/imagenette.md', r'python -m alexnet_jax\.report', NOT_RUN,
         'reads the sweep the launch above it runs'),
    Rule('docs/imagenette.md', r'python -m alexnet_jax\.diagnose', NOT_RUN,
         'AlexNet on imagenette, minutes each'),
    Rule('docs/paper_vs_2012_code.md', r'python -m alexnet_jax\.main .*--workdir=DIR', TEMPLATE),
    Rule('docs/performance.md', r'python -m alexnet_jax\.main', NOT_RUN, 'CIFAR-10, hours'),
]


@dataclasses.dataclass(frozen=True)
class Command:
  page: str
  text: str  # As the page writes it, continuation lines joined and comments dropped.
  variables: tuple[tuple[str, str], ...]  # The block's NAME="value" lines before it.


def _logical_lines(lines: list[str]) -> list[str]:
  """Lines joined across a trailing backslash and across an open double quote."""
  joined, current = [], ''
  for line in lines:
    current = f'{current} {line.strip()}' if current else line.strip()
    if current.endswith('\\'):
      current = current[:-1].rstrip()
    elif current.count('"') % 2 == 0:
      joined.append(current)
      current = ''
  return joined


def code_blocks(text: str) -> list[list[str]]:
  """The lines of each code block: fenced, or indented by 4 spaces more than the text around
  it (a list item's block by 6) after a blank line."""
  blocks, current, indent, fenced, previous_blank = [], [], 0, False, True
  for line in text.split('\n'):
    if line.lstrip().startswith('```'):
      if fenced:
        blocks.append(current)
        current = []
      fenced = not fenced
      continue
    if fenced:
      current.append(line)
      continue
    depth = len(line) - len(line.lstrip())
    if current and (depth >= indent or not line.strip()):
      current.append(line[indent:])
      continue
    if current:
      blocks.append(current)
      current = []
    if previous_blank and depth >= 4 and line.strip() and not re.match(r'\s*([-*]|\d+\.) ', line):
      indent, current = depth, [line[depth:]]
    previous_blank = not line.strip()
  return blocks + ([current] if current else [])


SHELL_START = re.compile(r'(python|pip|git|for|[A-Z_]+=)\b')


@functools.cache
def commands() -> list[Command]:
  found = []
  for page in PAGES:
    with open(os.path.join(REPO, page)) as f:
      blocks = code_blocks(f.read())
    for block in blocks:
      lines = [line for line in block if not line.lstrip().startswith('#')]
      if not any(SHELL_START.match(line.strip()) for line in lines):
        continue  # A listing, not commands.
      variables = []
      for line in _logical_lines(lines):
        line = re.sub(r'\s+#\s.*$', '', line).strip()  # A trailing comment.
        assignment = re.fullmatch(r'([A-Z_]+)=("[^"]*"|\S*)', line)
        if assignment:
          variables.append((assignment[1], assignment[2]))
        elif line and not re.fullmatch(r'(for .*; do|done(; wait)?)', line):
          found.append(Command(page, line.rstrip(' &'), tuple(variables)))
  return found


def rule_of(command: Command) -> Rule | None:
  for rule in RULES:
    if rule.page == command.page and re.match(rule.start, command.text):
      return rule
  return None


def test_every_command_of_the_pages_is_classified():
  unclassified = [f'{c.page}: {c.text}' for c in commands() if rule_of(c) is None]
  assert not unclassified, ('commands that no rule of tests/test_commands.py classifies (say '
                            'whether CI runs them):\n' + '\n'.join(unclassified))
  assert len(commands()) >= 40  # The pages' blocks were found.
  unused = [r for r in RULES if not any(rule_of(c) == r for c in commands())]
  assert not unused, f'rules that no command matches any more: {unused}'


def _argv(command: Command, home: str) -> list[str]:
  """The command's words as the shell gives them to the program (the block's variables and
  $HOME expanded), without a leading NAME=VALUE."""
  text = command.text
  for name, value in reversed(command.variables):
    text = re.sub(rf'\${name}\b', lambda _: value.strip('"'), text)
  words = shlex.split(text.replace('$HOME', home).replace('$i', '0'))
  while words and re.match(r'[A-Z_]+=', words[0]):
    words.pop(0)
  return words


def _module_file(module: str) -> str:
  return os.path.join(REPO, *module.split('.')) + '.py'


@functools.cache
def _flags_of(module: str) -> frozenset[str]:
  """The flags a module (and the repository modules it imports) defines, absl or argparse."""
  with open(_module_file(module)) as f:
    source = f.read()
  names = set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source))
  names |= set(re.findall(r"add_argument\(\s*'--(\w+)'", source))
  for package, imported in re.findall(r'^from (alexnet_jax|launch) import ([\w, ]+)', source,
                                      re.M):
    for name in imported.split(','):
      path = f'{package}.{name.strip()}'
      if os.path.exists(_module_file(path)):
        names |= _flags_of(path)
  return frozenset(names)


def _check_config_keys(config_flag: str, flags: list[str], where: str) -> None:
  path, _, variant = config_flag.partition(':')
  assert os.path.exists(os.path.join(REPO, path)), f'{where}: no config file {path}'
  module = naming.load_config_module(os.path.join(REPO, path))
  config = module.get_config(variant) if variant else module.get_config()
  for flag in flags:
    key = flag.removeprefix('--config.').split('=')[0]
    section = config
    for part in key.split('.'):
      assert part in section, f'{where}: {flag}: the config {config_flag} has no key {key}'
      section = section[part]


def check_statically(command: Command, home: str) -> None:
  """The module exists, each flag is one it defines, each --config.KEY a key of its config."""
  words = _argv(command, home)
  where = f'{command.page}: {command.text}'
  if words[:2] != ['python', '-m']:
    return
  module, args = words[2], words[3:]
  assert os.path.exists(_module_file(module)), f'{where}: no module {module}'
  split = args.index('--') if '--' in args else len(args)
  program_args, main_args = args[:split], args[split + 1:]
  for program, flags in ((module, program_args), ('alexnet_jax.main', main_args)):
    names = [f.removeprefix('--').split('=')[0] for f in flags if f.startswith('--')]
    unknown = [n for n in names if not n.startswith('config.') and n not in _flags_of(program)]
    assert not unknown, f'{where}: {program} defines no flag {unknown}'
  config_flag = next((f.split('=', 1)[1] for f in args if f.startswith('--config=')), None)
  if not config_flag or '[' in config_flag or 'NAME' in config_flag:
    return
  if module.startswith('launch.'):  # A sweep: the keys of each of its runs' configs.
    for run in sweep.expand(os.path.join(REPO, config_flag), '/sweep', main_args):
      run_config = next(f for f in run.command if f.startswith('--config='))
      _check_config_keys(run_config.split('=', 1)[1],
                         [f for f in run.command if f.startswith('--config.')], where)
  else:
    _check_config_keys(config_flag, [f for f in args if f.startswith('--config.')], where)


def test_every_command_not_run_here_names_a_module_flags_and_keys_that_exist(tmp_path):
  checked = 0
  for command in commands():
    if rule_of(command).kind in (NOT_RUN, RUN):
      check_statically(command, str(tmp_path))
      checked += 1
  assert checked >= 30


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
  """A working folder with the repository's configs and results, and a $HOME holding the
  generated image folders that the pages' data commands read; `python` and `pip` are this
  interpreter's."""
  root = tmp_path_factory.mktemp('commands')
  work, home, bin_dir = root / 'work', root / 'home', root / 'bin'
  for folder in (work, home, bin_dir):
    folder.mkdir()
  for name in ('configs', 'results', 'requirements.txt'):
    os.symlink(os.path.join(REPO, name), work / name)
  # CIFAR-10's layout: 132 training images (one batch of 128), 12 test images.
  write_image_folder(home / 'data' / 'cifar10', splits=('train',), per_class=44, size=(32, 32))
  write_image_folder(home / 'data' / 'cifar10', splits=('test',), per_class=4, size=(32, 32))
  write_image_folder(home / 'data' / 'imagenette', splits=('train', 'val'), per_class=4,
                     size=(170, 150))
  # Scripts, not links: a link to a virtual environment's python leaves the environment.
  for name, command in (('python', sys.executable), ('pip', f'{sys.executable} -m pip')):
    (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    (bin_dir / name).chmod(0o755)
  # A user's shell: not the 8 CPU devices that the tests' own process asks XLA for.
  env = {**{k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}, 'HOME': str(home),
         'PYTHONPATH': REPO, 'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}'}
  return work, home, env


RUN_HERE = [c for c in commands() if rule_of(c) and rule_of(c).kind == RUN]


@pytest.mark.parametrize('command', RUN_HERE, ids=lambda c: f'{c.page}:{c.text[:60]}')
def test_command_runs_as_written(sandbox, command):
  work, home, env = sandbox
  rule = rule_of(command)
  def run(flags):
    script = ''.join(f'{name}={value}\n' for name, value in command.variables)
    script += ' '.join([command.text, *flags])
    result = subprocess.run(['bash', '-c', script], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f'{script}\n{result.stderr[-3000:]}'
    return script, result

  script, result = run(rule.shorten)
  for path in rule.expect:
    assert (work / path).exists() or (home / path).exists(), f'{script}: no {path}'
    if path.startswith('runs/'):  # main chose the folder: its first line says which.
      assert f'Run folder: {path.split("/checkpoints")[0]}' in result.stderr.splitlines()[0]
  if rule.again:
    script, result = run(rule.again)
    assert rule.again_says in result.stderr, f'{script}\n{result.stderr[-3000:]}'

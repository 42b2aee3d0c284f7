"""Run folders at URIs: a run whose workdir is gs://... writes, resumes and is reported, against a
GCS emulator on localhost (gcp-storage-emulator). epath reaches it through gcsfs
(EPATH_USE_TF=false, STORAGE_EMULATOR_HOST), orbax's arrays through tensorstore
(TENSORSTORE_GCS_HTTP_URL); TensorFlow's own GCS client cannot be pointed at an emulator, which
is why nothing of a run's folder goes through it. The same code on local paths is every other
test."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from alexnet_jax import paths
from tests.helpers import REPO, run_main

BUCKET = 'alexnet-test'
SMALL_RUN = ('--config.dataset.name=synthetic', '--config.dataset.synthetic_train_examples=128',
             '--config.dataset.synthetic_eval_examples=32', '--config.model.conv_features=(8,8,16)',
             '--config.batch_size=32', '--config.eval_batch_size=16', '--config.mesh.data=1',
             '--config.log_every_steps=2', '--config.learning_rate=0.001')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def emulator():
  """The environment that sends gs://BUCKET to a fresh in-memory emulator."""
  pytest.importorskip('gcsfs')
  if subprocess.run([sys.executable, '-c', 'import gcp_storage_emulator'],
                    capture_output=True).returncode != 0:
    pytest.skip('gcp-storage-emulator is not installed')
  port = _free_port()
  server = subprocess.Popen(
      [sys.executable, '-m', 'gcp_storage_emulator', 'start', f'--port={port}', '--in-memory',
       f'--default-bucket={BUCKET}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 30
  while True:
    try:
      socket.create_connection(('localhost', port), timeout=1).close()
      break
    except OSError:
      if time.time() > deadline or server.poll() is not None:
        server.kill()
        pytest.fail('the GCS emulator did not start')
      time.sleep(0.2)
  url = f'http://localhost:{port}'
  # One request at a time: the emulator's in-memory store answers concurrent writes of one object
  # with responses tensorstore cannot parse ("Malformed StorageGeneration").
  yield {'STORAGE_EMULATOR_HOST': url, 'TENSORSTORE_GCS_HTTP_URL': url, 'EPATH_USE_TF': 'false',
         'TENSORSTORE_GCS_REQUEST_CONCURRENCY': '1',
         'GOOGLE_CLOUD_PROJECT': 'test'}
  server.kill()
  server.wait()


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-c', code], cwd=REPO, text=True, capture_output=True,
                        env={**os.environ, **env}, timeout=120)


# The emulator sends no generation headers; tensorstore now and then rejects its answer to a
# checkpoint write with this. The run then stops with its earlier checkpoints intact, and the
# same command resumes it, as after any crash.
EMULATOR_FLAW = 'Malformed StorageGeneration'


def _run_to_the_end(workdir: str, num_epochs: int, env: dict) -> list[str]:
  """The stderr of each invocation of `main` until one succeeds (at most three)."""
  outputs = []
  for _ in range(3):
    done = run_main(f'--workdir={workdir}', f'--config.num_epochs={num_epochs}', *SMALL_RUN,
                    env=env)
    outputs.append(done.stderr)
    if done.returncode == 0:
      return outputs
    assert EMULATOR_FLAW in done.stderr, done.stderr[-3000:]
  pytest.fail(f'three invocations in a row met the emulator\'s flaw: {outputs[-1][-2000:]}')


def test_a_run_at_a_gs_uri_writes_resumes_and_is_reported(emulator):
  workdir = f'gs://{BUCKET}/sweep/run'
  _run_to_the_end(workdir, 1, emulator)
  second = _run_to_the_end(workdir, 2, emulator)
  assert 'Resumed from the checkpoint at step 4 (epoch 1.00)' in second[0]

  # What the two runs left, read back through the same layer: each step logged once, a config,
  # checkpoints, TensorBoard scalars with a step each; then the report on them, in the same
  # process (a process costs seconds of imports).
  listed = _python(f'''
import json, os, tempfile
from absl import app
from alexnet_jax import paths, report
from tests.helpers import tensorboard_scalars
root = paths.Path({workdir!r})
records = [json.loads(l) for l in (root / 'metrics.jsonl').read_text().splitlines()]
local = tempfile.mkdtemp()  # TensorBoard's loader reads gs:// through TensorFlow: copied here.
for f in root.glob('events.out.tfevents.*'):
  paths.write_bytes(os.path.join(local, f.name), f.read_bytes())
listing = {{'steps': [r['step'] for r in records if 'train_loss' in r],
           'epochs': [r['epoch'] for r in records if 'eval_top1_error' in r],
           'files': sorted(p.name for p in root.iterdir()),
           'checkpoints': sorted(p.name for p in (root / 'checkpoints').iterdir()),
           'event_files': len(list(root.glob('events.out.tfevents.*'))),
           'scalar_steps': [s for s, _ in tensorboard_scalars(local, 'train_loss')]}}
print('LISTING', json.dumps(listing))
app.run(report.main, argv=['report', 'gs://{BUCKET}/sweep', '--table=runs',
                           '--plot=gs://{BUCKET}/plots'])
''', emulator)
  assert listed.returncode == 0, listed.stderr[-3000:]
  listing_line, report_output = listed.stdout.split('LISTING ', 1)[1].split('\n', 1)
  found = json.loads(listing_line)
  assert found['steps'] == [2, 4, 6, 8]
  assert found['epochs'] == [1, 2]
  assert {'config.json', 'metrics.jsonl', 'checkpoints'} <= set(found['files'])
  assert '8' in found['checkpoints']
  # An event file per run (a run the emulator's flaw stopped left one too), each step's training
  # loss once in TensorBoard.
  assert found['event_files'] >= 2 and found['scalar_steps'] == [2, 4, 6, 8]
  # The report's table and plots.
  assert 'sweep/run' in report_output
  assert f'wrote gs://{BUCKET}/plots/curves_' in listed.stderr


def test_local_paths_through_the_same_layer(tmp_path):
  path = str(tmp_path / 'a' / 'file.txt')
  paths.Path(path).parent.mkdir(parents=True)
  paths.write_text(path, 'one')
  paths.write_text(path, 'two')  # Replaced whole.
  assert paths.Path(path).read_text() == 'two'
  assert os.listdir(tmp_path / 'a') == ['file.txt']  # No temporary file left behind.
  log = paths.AppendOnlyFile(str(tmp_path / 'log'))
  log.append(b'x')
  log.append(b'y')
  assert (tmp_path / 'log').read_bytes() == b'xy'
  assert paths.absolute('gs://b/x') == 'gs://b/x' and paths.is_uri('gs://b/x')
  assert paths.absolute('rel') == os.path.abspath('rel') and not paths.is_uri('rel')
  paths.move(str(tmp_path / 'a'), str(tmp_path / 'b'))
  assert (tmp_path / 'b' / 'file.txt').read_text() == 'two'


def test_appends_to_an_object_are_uploaded_together(emulator):
  """In an object store, appends are held until a flush or until upload_every_s has passed: one
  upload per append would send the whole object again for every line. Read back from the store
  (the emulator), after each step."""
  result = _python(f'''
from alexnet_jax import paths
path = 'gs://{BUCKET}/held/log'
paths.write_bytes(path, b'old;')  # Left by the run before a resume.
held = paths.AppendOnlyFile(path, upload_every_s=3600)
held.append(b'a;')
held.append(b'b;')
stored = [paths.Path(path).read_bytes()]
held.flush()
stored.append(paths.Path(path).read_bytes())
at_once = paths.AppendOnlyFile(path, upload_every_s=0)
at_once.append(b'c;')
stored.append(paths.Path(path).read_bytes())
print(stored)
''', emulator)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == "[b'old;', b'old;a;b;', b'old;a;b;c;']"

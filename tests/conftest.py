"""Eight CPU devices for the mesh tests, and one compilation cache for the whole session (the
tests, and the runs they start in subprocesses, compile the same small networks many times).
Must run before JAX is imported."""

import os
import sys
import tempfile

# XLA's LLVM backend at optimization level 0: the tests compile a hundred small programs, and
# compiling is most of their time; this halves it. XLA's HLO passes, which decide what is
# computed, run as in a run, and the machine code differs only in floating-point rounding: every
# comparison in the tests is between two computations under these flags, or within a tolerance.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8 '
                      '--xla_backend_optimization_level=0')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
# With libtpu installed (requirements-tpu.txt) every JAX process would look for a TPU and hold
# libtpu's lock file, so that concurrent test processes fail: the tests run on the CPU.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# One cache for both xdist workers of a run (they compile the same networks), new for each run.
_run_id = os.environ.get('PYTEST_XDIST_TESTRUNUID')
_cache_dir = (os.path.join(tempfile.gettempdir(), f'alexnet_jax_tests_{_run_id}') if _run_id
              else tempfile.mkdtemp(prefix='alexnet_jax_tests_'))
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', _cache_dir)
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

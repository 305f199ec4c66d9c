"""Shared test set-up: quiet TF, oneDNN on, the shared data folder beside the checkout."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

import pytest  # noqa: E402

SHARED_DATA = os.environ.get(
    'I3D_SHARED_DATA',
    os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data')))


@pytest.fixture(scope='session')
def shared_data():
  if not os.path.isdir(SHARED_DATA):
    pytest.fail(f'shared test data not found at {SHARED_DATA} (set I3D_SHARED_DATA)')
  return SHARED_DATA

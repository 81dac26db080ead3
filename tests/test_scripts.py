"""Generated shell scripts: valid bash (`bash -n`) and shellcheck-clean, for every kind of job and
with every cluster setting that adds lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import designs

pytestmark = pytest.mark.copier

SETTINGS = {
    "none": {},
    "all": {"slurm_account": "acct", "slurm_partition": "gpu", "slurm_constraint": "gpu80", "mail_user": "me@example.org",
            "conda_env": "tt", "modules": "anaconda3/2024.6 cudatoolkit/12.4", "venv": "/opt/envs/tt"},
}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def scripts(request, template_repo, tmp_path_factory) -> list[Path]:
    from conftest import copier, write_summary

    tmp = tmp_path_factory.mktemp("scripts")
    summary = write_summary(tmp / "summary.yaml", designs.rich())
    extra = [f"--data={k}={v}" for k, v in SETTINGS[request.param].items()]
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), *extra, str(template_repo), str(tmp / "exp"))
    assert result.returncode == 0, result.stderr
    found = sorted((tmp / "exp").rglob("*.slurm")) + [tmp / "exp" / "submit.sh"]
    assert len(found) > 10
    return found


def test_bash_syntax(scripts):
    for script in scripts:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, (script, result.stderr)


def test_shellcheck_clean(scripts):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make test installs it via .ci/install-slurm.sh)")
    result = subprocess.run(["shellcheck", "--severity=warning", "--shell=bash", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout

"""gitrepo's runner and the repository operations built on it, against real git (in-process, fast)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cruijff_gen import gitrepo
from cruijff_gen.errors import GitError

ODD = "dir/ü\nnew line.txt"  # non-ASCII and a newline: quoted by git unless listed with -z


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def committed(tmp_path: Path, files: dict[str, str], name: str = "exp") -> Path:
    repo = tmp_path / name
    for rel, content in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(content, encoding="utf-8")
    assert gitrepo.commit_all(repo, "first") is not None
    return repo


def test_failure_is_one_line_naming_command_repo_and_git_message(tmp_path):
    repo = committed(tmp_path, {"a.txt": "a\n"})
    with pytest.raises(GitError) as caught:
        gitrepo.run(repo, "checkout", "no-such-branch")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"git checkout no-such-branch in {repo} failed: error: pathspec 'no-such-branch'")
    long = gitrepo.call(repo, "checkout", "HEAD", "--", *(f"missing-{i}" for i in range(500)))
    assert not long.ok and len(long.failure()) < 300  # a command naming thousands of paths is shortened
    assert gitrepo.call(repo, "rev-parse", "--verify", "nothing").returncode != 0  # call(): the status, no raise


def test_git_missing_from_path_is_a_git_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GitError, match="cannot run git"):
        gitrepo.run(tmp_path, "status")


def test_head_text_is_the_file_bytes_exactly(tmp_path, monkeypatch):
    texts = {"two_newlines": "x\n\n", "no_newline": "x", "empty": "", ODD: "ü\n"}
    repo = committed(tmp_path, texts)
    for rel, content in texts.items():
        assert gitrepo.head_text(repo, rel) == content
    assert gitrepo.head_text(repo, "absent") is None
    read = gitrepo.head_reader(repo)
    assert read("two_newlines") == "x\n\n" and read(ODD) == "ü\n"
    (repo / "no_newline").write_text("changed")
    gitrepo.commit_all(repo, "second")
    assert read("no_newline") == "x"  # the commit HEAD was when the reader was made
    for missing in ("absent", "dir"):
        with pytest.raises(FileNotFoundError):
            read(missing)
    assert gitrepo.blobs(repo, ["0" * 40]) == {"0" * 40: None}
    ahead = gitrepo.head_reader(repo, prefetch=["two_newlines", ODD, "absent"])  # read in one batch, the rest on demand
    assert [ahead(rel) for rel in ("no_newline", "empty")] == ["changed", ""]
    monkeypatch.setenv("PATH", str(tmp_path))  # no git from here on: the prefetched files were read with the tree
    assert [ahead(rel) for rel in ("two_newlines", ODD)] == ["x\n\n", "ü\n"]


def test_listings_of_odd_paths_are_the_names_themselves(tmp_path):
    repo = committed(tmp_path, {ODD: "1\n", "plain": "1\n"})
    (repo / ODD).write_text("2\n")
    (repo / "dir" / "ünew").write_text("new\n")
    assert gitrepo.changed(repo) == [ODD, "dir/ünew"]
    assert gitrepo.restore_tracked(repo) == [ODD]
    assert (repo / ODD).read_text() == "1\n"
    sha = gitrepo.commit_all(repo, "add ünew")
    assert gitrepo.files_in_commit(repo, sha) == 1
    git(repo, "mv", "plain", "renamed")  # a staged rename: `R  renamed\0plain\0`
    assert gitrepo.changed(repo) == ["renamed"]


def test_unmerged_lists_conflicted_paths(tmp_path):
    repo = committed(tmp_path, {ODD: "base\n", "other": "base\n"})
    branch = git(repo, "symbolic-ref", "--short", "HEAD").strip()
    git(repo, "checkout", "-q", "-b", "side")
    (repo / ODD).write_text("side\n")
    git(repo, "commit", "-qam", "side")
    git(repo, "checkout", "-q", branch)
    (repo / ODD).write_text("main\n")
    git(repo, "commit", "-qam", "main")
    assert subprocess.run(["git", "-C", str(repo), "merge", "-q", "side"], capture_output=True).returncode != 0
    assert gitrepo.unmerged(repo) == [ODD]


def test_merge_text(tmp_path):
    labels = ("ours", "base", "theirs")
    assert gitrepo.merge_text("a\nb\n", "a\n", "a\nb\n", labels) == ("a\nb\n", False)
    merged, conflicted = gitrepo.merge_text("a\nb\n", "a\n", "a\nc\n", labels)
    assert conflicted and merged == "a\n<<<<<<< ours\nb\n=======\nc\n>>>>>>> theirs\n"
    assert gitrepo.merge_text("x", "x", "x", labels) == ("x", False)  # no newline added or stripped


def test_init_uses_the_users_default_branch(tmp_path, monkeypatch):
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = trunk\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    repo = committed(tmp_path, {"a": "a\n"})
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/trunk"
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    other = committed(tmp_path, {"a": "a\n"}, name="other")
    assert git(other, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_identity_fallback_only_without_an_identity(tmp_path, monkeypatch):
    repo = committed(tmp_path, {"a": "a\n"})
    assert gitrepo.identity_note(repo) is None  # the suite's GIT_AUTHOR_* / GIT_COMMITTER_*
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tuseConfigOnly = true\n")  # no guessing from the host name
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    assert "cruijff_gen <cruijff_gen@localhost>" in gitrepo.identity_note(repo)
    (repo / "a").write_text("b\n")
    gitrepo.commit_all(repo, "by the fallback")
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == "cruijff_gen <cruijff_gen@localhost>|cruijff_gen <cruijff_gen@localhost>"


def test_isolate_ignores_a_hooks_repository_variables(tmp_path, monkeypatch):
    """In a hook git exports GIT_DIR and GIT_INDEX_FILE (the experiment's); a command for another
    repository (the commit hook's scratch repository) must not follow them."""
    hooked = committed(tmp_path, {"a": "a\n"}, name="hooked")
    monkeypatch.setenv("GIT_DIR", str(hooked / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(hooked / ".git" / "index"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    gitrepo.run(scratch, "init", "-q", isolate=True)
    assert (scratch / ".git").is_dir()
    assert gitrepo.run(scratch, "ls-files", isolate=True) == b""
    assert gitrepo.run(scratch, "ls-files") == b"a\n"  # inherited: the hook's repository, as the commit hook needs


def test_reads_take_no_optional_lock(tmp_path):
    """`git status` with stale stat information rewrites the index unless told not to: the runner
    never does (a hook's or a job's status must not contend with the index lock of a commit)."""
    repo = committed(tmp_path, {"a": "a\n"})
    index = repo / ".git" / "index"
    os.utime(repo / "a", (1, 1))  # same content, other stat information
    before = index.read_bytes()
    assert gitrepo.changed(repo) == []
    assert index.read_bytes() == before
    subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], check=True, capture_output=True)
    assert index.read_bytes() != before  # (what a plain `git status` does)


def test_hooks_dir_from_a_subdirectory(tmp_path):
    repo = committed(tmp_path, {"sub/a": "a\n"})
    assert gitrepo._hooks_dir(repo / "sub") == (repo / ".git" / "hooks").resolve()
    gitrepo.write_sealed_hooks(repo / "sub")
    assert gitrepo.sealed_hooks_missing(repo) == []

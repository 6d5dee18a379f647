from racephoto.hugepages import TUNABLE, VARIABLE, with_huge_pages


def test_it_adds_the_tunable_and_keeps_the_operators_own():
    assert with_huge_pages({"PATH": "/bin"}) == {"PATH": "/bin", VARIABLE: TUNABLE}
    assert with_huge_pages({VARIABLE: "glibc.malloc.arena_max=2"})[VARIABLE] == \
        f"glibc.malloc.arena_max=2:{TUNABLE}"
    # An operator who chose otherwise keeps their choice.
    assert with_huge_pages({VARIABLE: "glibc.malloc.hugetlb=0"})[VARIABLE] == "glibc.malloc.hugetlb=0"


def test_manage_py_run_gives_huge_pages_to_the_web_server_and_not_to_the_worker(monkeypatch):
    from racephoto.management.commands import run

    started = []
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.setattr(run.subprocess, "Popen",
                        lambda args, env, preexec_fn: started.append((args, env)) or args)

    run.Command()._start_children("127.0.0.1", 8000, 2)

    (web, web_env), (worker, worker_env) = started
    assert web[0].endswith("gunicorn") and web_env[VARIABLE] == TUNABLE
    assert worker[0].endswith("celery") and VARIABLE not in worker_env


def test_its_command_line_says_how_to_use_it_without_a_command():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "racephoto.hugepages"], capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 1
    assert "usage: python -m racephoto.hugepages COMMAND" in result.stderr

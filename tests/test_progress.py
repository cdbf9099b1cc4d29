"""The launcher's progress bar reads rank 0's progress lines; the log stays in the run folder."""

from fasttrain.launch.progress import JobProgress


def test_the_bar_follows_the_steps_and_shows_loss_rate_and_accuracy(monkeypatch, capsys):
    monkeypatch.setenv("FASTTRAIN_PROGRESS", "text")
    progress = JobProgress("job", 10, "progress")
    progress.feed("[fasttrain] resumed from the checkpoint at step 4/10\n")
    assert progress.step == 4 and progress.bar.n == 4
    progress.feed("[fasttrain] step 5/10  loss 2.3000  1,234 img/s  (10 ms/step)\n")
    progress.feed("Epoch 0: some line of Lightning's\n")
    progress.feed("[fasttrain] validation at step 5: accuracy 0.4321  loss 1.2\n")
    progress.feed("[fasttrain] warning: precision='16-mixed' on a CPU runs, but slowly\n")
    assert progress.bar.n == 5 and progress.loss == "2.3000" and progress.rate == "1,234"
    assert progress.accuracy == 0.4321
    progress.close("[launch] job: done")
    out = capsys.readouterr().out
    assert "val acc=0.432" in out and "[launch] job: done" in out and "16-mixed" in out
    assert "Epoch 0" not in out  # only in log.txt


def test_show_all_prints_every_line_and_none_prints_nothing(capsys):
    every = JobProgress("job", 4, "all")
    every.feed("anything\n")
    quiet = JobProgress("job", 4, "none")
    quiet.feed("[fasttrain] step 1/4  loss 1.0  10 img/s  (1 ms/step)\n")
    quiet.close("summary")
    assert capsys.readouterr().out == "anything\n" and quiet.step == 1

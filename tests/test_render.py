"""Videos: a tiny online run writes one at evaluation (eval.video_every), `render` makes one of a
run dir's policy; both are real GIFs whose frames change. Rendering is headless (EGL or OSMesa:
the README's test command installs Debian's libosmesa6)."""

import numpy as np
import pytest
from PIL import Image

from tests.common import TINY
from wsrl_mjx.phases.online import run_online
from wsrl_mjx.phases.render import frame_strip, headless_gl, stride_for, write_video
from wsrl_mjx.run import main
from wsrl_mjx.runtime.errors import RenderError
from wsrl_mjx.runtime.policy import load_config


def gif_frames(path) -> np.ndarray:
    with Image.open(path) as im:
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
    return np.stack(frames)


@pytest.fixture(scope="module")
def run_with_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    extra = ["agent.critic_minibatches=2", "eval.video_every=100", "run.tensorboard=true"]
    extra.append(f"run.run_dir={root}")
    run_online(load_config(None, [*TINY, *extra]))
    return root


def test_evaluation_writes_a_video_every_so_many_steps(run_with_videos):
    videos = sorted(p.name for p in (run_with_videos / "videos").iterdir())
    # evaluations at 0, 40 (after the warmup), 120 (the first chunk end past 100) and 200
    assert videos == ["0.gif", "120.gif", "200.gif"]
    frames = gif_frames(run_with_videos / "videos" / "200.gif")
    # PointMass: 20 steps of 0.02 s at 30 fps -> every 2nd state, plus the reset
    assert frames.shape == (11, 240, 320, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 0  # the mass moved
    assert list((run_with_videos / "tensorboard").iterdir())  # the frame strip's events


def test_render_command_writes_the_runs_policy(run_with_videos, tmp_path, capsys):
    out = tmp_path / "policy.gif"
    assert main(["render", str(run_with_videos), "--out", str(out), "--fps", "50"]) == 0
    assert f"wrote {out} (twin: 21 frames" in capsys.readouterr().out  # every state at 50 fps
    frames = gif_frames(out)
    assert len(frames) == 21 and frames.std() > 0
    assert main(["render", str(run_with_videos), "--out", str(tmp_path / "x.avi")]) == 2
    assert "write a .gif or an .mp4" in capsys.readouterr().err


def test_a_machine_without_opengl_is_told_what_to_install(monkeypatch):
    from wsrl_mjx.phases import render

    monkeypatch.setattr(render, "_chosen", [])
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr(render, "GL_BACKENDS", ("no-such-backend",))
    with pytest.raises(RenderError, match="apt-get install libosmesa6"):
        headless_gl()


def test_video_helpers():
    assert stride_for(0.008, 30) == 4 and stride_for(0.05, 30) == 1
    frames = np.random.default_rng(0).integers(0, 255, (10, 4, 6, 3), dtype=np.uint8)
    assert frame_strip(frames, 3).shape == (4, 18, 3)
    with pytest.raises(RenderError, match="write a .gif"):
        write_video(frames, "x.png", 30)

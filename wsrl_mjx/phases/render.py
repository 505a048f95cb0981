"""Videos of a policy: an episode rolled out on the device in the MJX twin (its qpos, qvel and
mocap positions kept), replayed through MuJoCo's CPU renderer, written as GIF (Pillow) or MP4
(imageio-ffmpeg); optionally the same policy in the native Gymnasium env, rendered by Gymnasium.

Headless: without a display, MuJoCo needs EGL or OSMesa (Debian: `libegl1` with Mesa, or
`libosmesa6`). `headless_gl` picks the first that works (probed in a child process, since a
failed GL start cannot be undone in this one); MUJOCO_GL, when set, is used as it is.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wsrl_mjx.runtime.errors import RenderError

GL_BACKENDS = ("egl", "osmesa")
CAMERA_DISTANCE = 3.0  # m from the tracked body (Gymnasium's locomotion default; the model's
# extent would include the floor plane and put the body out of sight)
INSTALL_GL = (
    "install a headless OpenGL: `apt-get install libegl1 libgl1-mesa-dri` (EGL) or "
    "`apt-get install libosmesa6` (OSMesa), or set MUJOCO_GL to a backend that works here"
)
_PROBE = (
    "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); "
    "r = mujoco.Renderer(m, 8, 8); r.render(); r.close()"
)
_chosen: list[str] = []


def headless_gl() -> str:
    """The GL backend MuJoCo renders with in this process (set up once)."""
    if _chosen:
        return _chosen[0]
    if os.environ.get("MUJOCO_GL") or (sys.platform != "linux" or os.environ.get("DISPLAY")):
        _chosen.append(os.environ.get("MUJOCO_GL", "default"))
        return _chosen[0]
    for backend in GL_BACKENDS:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env={**os.environ, "MUJOCO_GL": backend},
            capture_output=True,
            timeout=120,
        )
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend  # Gymnasium's renderer reads it when it starts
            from mujoco.rendering.classic import gl_context  # mujoco chose glfw on import

            gl_context.GLContext = importlib.import_module(f"mujoco.{backend}").GLContext
            _chosen.append(backend)
            return backend
    raise RenderError(f"no OpenGL to render with (tried {', '.join(GL_BACKENDS)}): {INSTALL_GL}")


@dataclass(frozen=True)
class Episode:
    """One twin episode's physics states, enough to redraw it: [T+1, ...] from the reset."""

    qpos: np.ndarray
    qvel: np.ndarray
    mocap_pos: np.ndarray
    episode_return: float
    dt: float


def twin_episode(env: Any, agent: Any, params: Any, key: jax.Array, steps: int) -> Episode:
    """The deterministic policy's episode in the twin (a scan on the device), cut at its first
    termination or at `steps`."""

    def body(state, _):
        action = agent.act(params, state.obs[None], key, deterministic=True)[0]
        state = env.step(state, action)
        d = state.data
        return state, (d.qpos, d.qvel, d.mocap_pos, state.reward, state.done)

    @jax.jit
    def rollout(key):
        state = env.reset(key)
        first = (state.data.qpos, state.data.qvel, state.data.mocap_pos)
        _, trace = jax.lax.scan(body, state, None, length=steps)
        return first, trace

    first, (qpos, qvel, mocap, reward, done) = jax.device_get(rollout(key))
    ended = np.flatnonzero(np.asarray(done) > 0)
    length = int(ended[0]) + 1 if ended.size else steps
    stack = lambda a, b: np.concatenate([np.asarray(a)[None], np.asarray(b)[:length]])  # noqa: E731
    return Episode(
        qpos=stack(first[0], qpos),
        qvel=stack(first[1], qvel),
        mocap_pos=stack(first[2], mocap),
        episode_return=float(np.sum(np.asarray(reward)[:length])),
        dt=float(getattr(env.task, "dt", 0.02)) * env.action_repeat,
    )


def _camera(model: Any, name: str | None) -> Any:
    """A named camera of the model, or one that follows the root body (locomotion walks away
    from a fixed view)."""
    import mujoco

    if name is not None:
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
            raise RenderError(f"the model has no camera {name!r}")
        return name
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = 1 if model.nbody > 1 else 0
    camera.distance = CAMERA_DISTANCE
    camera.elevation = -20.0
    camera.azimuth = 90.0
    return camera


def draw(model: Any, episode: Episode, stride: int, size=(240, 320), camera=None) -> np.ndarray:
    """[frames, H, W, 3] uint8: every `stride`-th state of the episode through MuJoCo's CPU
    renderer."""
    import mujoco

    headless_gl()
    data = mujoco.MjData(model)
    view = _camera(model, camera)
    renderer = mujoco.Renderer(model, *size)
    frames = []
    try:
        for t in range(0, len(episode.qpos), stride):
            data.qpos[:], data.qvel[:] = episode.qpos[t], episode.qvel[t]
            if model.nmocap:
                data.mocap_pos[:] = episode.mocap_pos[t]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=view)
            frames.append(renderer.render().copy())
    finally:
        renderer.close()
    return np.stack(frames)


def native_frames(env: Any, act: Any, seed: int, stride: int) -> tuple[np.ndarray, float]:
    """The same policy in a native Gymnasium env made with render_mode="rgb_array"."""
    from wsrl_mjx.phases.native_eval import flat_obs

    headless_gl()
    obs, _ = env.reset(seed=seed)
    frames, total, done, t = [env.render()], 0.0, False, 0
    while not done:
        action = np.asarray(act(jnp.asarray(flat_obs(obs), jnp.float32)[None]))[0]
        obs, reward, terminated, truncated, _ = env.step(action.astype(np.float64))
        total, done, t = total + float(reward), terminated or truncated, t + 1
        if t % stride == 0 or done:
            frames.append(env.render())
    return np.stack(frames), total


def stride_for(dt: float, fps: int) -> int:
    """States skipped per frame so the video plays in real time at about `fps`."""
    return max(1, round(1.0 / (dt * fps)))


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """GIF (Pillow) or MP4 (imageio with imageio-ffmpeg), by the file's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        duration = max(20, round(1000 / fps))  # GIF delays are in 10 ms; browsers floor at 20
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    elif path.suffix.lower() == ".mp4":
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise RenderError(
                "writing .mp4 needs `pip install imageio-ffmpeg`; or use .gif"
            ) from None
        imageio.mimwrite(path, list(frames), fps=fps, macro_block_size=1)
    else:
        raise RenderError(f"{path}: write a .gif or an .mp4")
    return path


def render_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    native: bool = False,
    fps: int = 30,
    size: tuple[int, int] = (240, 320),
    camera: str | None = None,
    seed: int = 0,
    allow_unverified: bool = False,
) -> dict:
    """A run's policy (newest checkpoint) as a video of one twin episode, and of one native
    episode with `native`; what was written, with each episode's return and frame count."""
    from wsrl_mjx.core.environment import make_env, make_eval_env
    from wsrl_mjx.phases.bridge import load_agent
    from wsrl_mjx.runtime.policy import from_dict

    agent, state, meta = load_agent(run_dir, allow_unverified=allow_unverified)
    cfg = from_dict(meta["config"])
    env = make_eval_env(cfg, make_env(cfg.env))
    steps = cfg.eval.episode_length or env.episode_length
    episode = twin_episode(env, agent, state.actor.params, jax.random.PRNGKey(seed), steps)
    stride = stride_for(episode.dt, fps)
    frames = draw(env.task.mj_model, episode, stride, size, camera)
    out = Path(out or Path(run_dir) / "videos" / f"{env.name}-twin.gif")
    written = {"twin": {"path": str(write_video(frames, out, 1.0 / (episode.dt * stride)))}}
    written["twin"].update(frames=len(frames), episode_return=episode.episode_return)
    if native:
        from wsrl_mjx.phases.native_eval import native_env

        overrides = {**cfg.env.overrides, **cfg.eval.overrides}
        genv = native_env(env.name, overrides, steps, render_mode="rgb_array", render_size=size)
        act = jax.jit(lambda o: agent.act(state.actor.params, o, jax.random.PRNGKey(0), True))
        frames, total = native_frames(genv, act, seed, stride)
        genv.close()
        path = out.with_name(out.stem.replace("-twin", "") + "-native" + out.suffix)
        written["native"] = {"path": str(write_video(frames, path, 1.0 / (episode.dt * stride)))}
        written["native"].update(frames=len(frames), episode_return=total)
    return written


def frame_strip(frames: np.ndarray, count: int = 8) -> np.ndarray:
    """`count` frames spread over a video, side by side: [H, W * count, 3] (TensorBoard)."""
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return np.concatenate(list(frames[picks]), axis=1)


@dataclass
class EvalVideos:
    """`eval.video_every`: at the first evaluation at or past each multiple of it, one twin
    episode of the current policy as `run_dir/videos/<step>.gif`, and a strip of its frames in
    TensorBoard (`eval/video`)."""

    env: Any
    agent: Any
    run_dir: Path
    every: int
    logger: Any
    fps: int = 30
    last: int = -1

    def __call__(self, params: Any, step: int) -> Path | None:
        if not self.every or (self.last >= 0 and step // self.every <= self.last // self.every):
            return None
        self.last = step
        steps = self.env.episode_length
        episode = twin_episode(self.env, self.agent, params, jax.random.PRNGKey(step), steps)
        stride = stride_for(episode.dt, self.fps)
        frames = draw(self.env.task.mj_model, episode, stride)
        path = write_video(
            frames, self.run_dir / "videos" / f"{step}.gif", 1 / (episode.dt * stride)
        )
        self.logger.log_image(step, "eval/video", frame_strip(frames))
        return path

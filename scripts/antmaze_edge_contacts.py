"""Usage: PYTHONPATH=. python scripts/antmaze_edge_contacts.py SEED FACE STEP > OUT.json
(results/antmaze_parity/edge_contact_medium_seed1_face1_step18.json: 1 1 18).

The worst edge-contact step of wall-normals (Medium, seed 1, face 1, step 18): native contacts
vs the twin's MJX contacts, physics substep by substep, each side from the same native state."""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)  # noqa: E402 (before the imports below)
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import mjx  # noqa: E402

import envs  # noqa: E402
from envs import gym_antmaze  # noqa: E402
from tests import antmaze_parity as P  # noqa: E402

name, seed, face, target = "AntMaze_Medium-v4", int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
env = P.native_env(name)
task = envs.make(name).task
task._mjx_model = mjx.put_model(task.mj_model, impl="jax")
m = task._mjx_model
state0 = jax.jit(task.reset)(jax.random.PRNGKey(0))
P.start_near_wall(env, seed, face=face)
rng = np.random.default_rng(seed)
actions = rng.uniform(-1, 1, (target + 1, 8))
for a in actions[:target]:
    env.step(a)
blocks = set(P.block_geoms(env.model).tolist())
slots = set(range(task.mj_model.ngeom - gym_antmaze.WALL_SLOTS, task.mj_model.ngeom))


@jax.jit
def twin_substep(d):
    with gym_antmaze.collision_functions(gym_antmaze._WALL_COLLIDERS):
        d = d.replace(mocap_pos=task.near_walls(d.qpos[:2]))
        d = mjx.forward(m, d)
        return d, mjx.step(m, d)


d = mujoco.MjData(env.model)
mujoco.mj_copyData(d, env.model, env.data)
d.ctrl[:] = actions[target]
template = state0.data.replace(ctrl=jnp.asarray(actions[target]))
out = []
for k in range(gym_antmaze.FRAME_SKIP):
    twin = P.twin_data(template, d)
    fwd, stepped = twin_substep(twin)
    mujoco.mj_forward(env.model, d)
    nat = [
        dict(
            g=sorted([int(c.geom1), int(c.geom2)]),
            dist=float(c.dist),
            pos=np.round(c.pos, 4).tolist(),
            n=np.round(c.frame[:3], 4).tolist(),
        )
        for c in d.contact[: d.ncon]
        if {int(c.geom1), int(c.geom2)} & blocks
    ]
    c = fwd._impl.contact if hasattr(fwd, "_impl") else fwd.contact
    geom = np.asarray(c.geom)
    dist = np.asarray(c.dist)
    pos = np.asarray(c.pos)
    frame = np.asarray(c.frame)
    tw = [
        dict(
            g=sorted(geom[i].tolist()),
            dist=float(dist[i]),
            pos=np.round(pos[i], 4).tolist(),
            n=np.round(frame[i, 0], 4).tolist(),
        )
        for i in range(len(dist))
        if set(geom[i].tolist()) & slots and dist[i] < 0.02
    ]
    before = d.qvel.copy()
    mujoco.mj_step(env.model, d)
    err = float(np.abs(np.asarray(stepped.qvel) - d.qvel).max())
    out.append(dict(substep=k, qvel_err=err, native=nat, twin=tw))
print(json.dumps(out, indent=1))

# The same state in the twin's own model (wall slots at their mocap positions) run by MuJoCo's
# C colliders: the slot placement is right if these match the native contacts.
P.start_near_wall(env, seed, face=face)
for a in actions[:target]:
    env.step(a)
tm = task.mj_model
td = mujoco.MjData(tm)
td.qpos[:] = env.data.qpos
td.qvel[:] = env.data.qvel
td.mocap_pos[:] = np.asarray(task.near_walls(jnp.asarray(env.data.qpos[:2])))
mujoco.mj_forward(tm, td)
c_twin = [
    dict(
        g=sorted([int(c.geom1), int(c.geom2)]),
        dist=float(c.dist),
        pos=np.round(c.pos, 4).tolist(),
        n=np.round(c.frame[:3], 4).tolist(),
    )
    for c in td.contact[: td.ncon]
    if {int(c.geom1), int(c.geom2)} & slots
]
print("# C colliders on the twin model, substep 0:", json.dumps(c_twin))
print(
    "# block 22 pos",
    env.data.geom_xpos[22].round(4).tolist(),
    "size",
    env.model.geom_size[22].tolist(),
)
print("# slots", td.mocap_pos.round(4).tolist())

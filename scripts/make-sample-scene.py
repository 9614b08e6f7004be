"""Build a small animated sample scene for Lumen tests and demos.

Run inside Blender (it is not a standalone Python program):

    blender -b --factory-startup --python scripts/make-sample-scene.py -- \
        --out FILE [--frames N] [--width W --height H] \
        [--engine CYCLES|BLENDER_EEVEE|BLENDER_WORKBENCH] [--samples S] \
        [--variant ok|external-texture|denoise|no-camera] [--texture PATH] [--compress] \
        [--seed N]

The scene is built from scratch: a camera, a sun, a ground plane and three
coloured objects that move and rotate over the frames, in front of a
non-black world, so no frame is uniform and consecutive frames differ.
Cycles renders on the CPU with few samples and denoising OFF (the Debian
Blender has no OpenImageDenoise).

Variants:
  ok                the plain scene
  external-texture  one material uses an image texture whose file is NOT
                    packed into the .blend (path from --texture; the file
                    need not exist)
  denoise           Cycles denoising on: fails deterministically on a
                    Blender built without OpenImageDenoise
  no-camera         the scene has no camera: Blender cannot render it

--seed N (default 0) picks another layout of the same kind of scene: the
objects' positions, sizes, colours and motion are perturbed from a seeded
random generator. Seed 0 is the original layout, unchanged.
"""

import argparse
import math
import random
import sys

import bpy


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="make-sample-scene.py")
    p.add_argument("--out", required=True, help="where to save the .blend")
    p.add_argument("--frames", type=int, default=6, help="frames 1..N (default 6)")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=180)
    p.add_argument(
        "--engine",
        default="CYCLES",
        choices=["CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"],
    )
    p.add_argument("--samples", type=int, default=16)
    p.add_argument(
        "--variant",
        default="ok",
        choices=["ok", "external-texture", "denoise", "no-camera"],
    )
    p.add_argument(
        "--texture",
        default="//textures/lumen-sample-texture.png",
        help="image path for --variant external-texture (need not exist)",
    )
    p.add_argument("--compress", action="store_true", help="save gzip-compressed")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="another object layout (default 0: the original scene)",
    )
    return p.parse_args(argv)


def material(name, rgb, texture_path=None):
    mat = bpy.data.materials.new(name)
    mat.diffuse_color = (*rgb, 1.0)  # what Workbench shows
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    bsdf = nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.5
    if texture_path is not None:
        # An image datablock pointing at a file outside the .blend, not
        # packed. Built by hand because images.load() needs the file.
        img = bpy.data.images.new("lumen-sample-texture", 8, 8)
        img.source = "FILE"
        img.filepath = texture_path
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = img
        mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def layout(seed):
    """Colours, sizes and motion of the three objects. Seed 0 is the
    original scene; any other seed perturbs it reproducibly."""
    lay = {
        "red": (0.80, 0.10, 0.08),
        "green": (0.10, 0.70, 0.15),
        "blue": (0.10, 0.20, 0.85),
        "cube_size": 1.6,
        "cube_x": -2.2,
        "cube_turn": 1.0,  # half turns over the animation
        "ball_radius": 0.8,
        "ball_from": -1.5,
        "ball_travel": 3.0,
        "ball_y": 1.0,
        "cone_x": 2.2,
        "cone_rise": 1.2,
    }
    if seed == 0:
        return lay
    rng = random.Random(seed)

    def colour():
        return tuple(round(rng.uniform(0.05, 0.9), 3) for _ in range(3))

    lay.update(
        red=colour(),
        green=colour(),
        blue=colour(),
        cube_size=rng.uniform(1.0, 2.0),
        cube_x=rng.uniform(-3.0, -1.6),
        cube_turn=rng.uniform(-1.0, 1.0),
        ball_radius=rng.uniform(0.5, 1.0),
        ball_from=rng.uniform(-2.5, -0.5),
        ball_travel=rng.uniform(1.5, 4.0),
        ball_y=rng.uniform(0.0, 2.0),
        cone_x=rng.uniform(1.6, 3.0),
        cone_rise=rng.uniform(0.5, 2.0),
    )
    return lay


def add_object(name, mesh_op, mat, **kwargs):
    mesh_op(**kwargs)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.materials.append(mat)
    return obj


def build(args):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "LumenSample"

    # Frames, resolution, output.
    scene.frame_start = 1
    scene.frame_end = max(1, args.frames)
    scene.frame_step = 1
    scene.render.fps = 24
    scene.render.fps_base = 1.0
    scene.render.resolution_x = args.width
    scene.render.resolution_y = args.height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.film_transparent = False

    # Engine.
    scene.render.engine = args.engine
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = args.variant == "denoise"
    scene.cycles.use_preview_denoising = False
    scene.eevee.taa_render_samples = args.samples
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.render_aa = "8"

    # A blue-grey world so no pixel is black and no frame is uniform.
    world = bpy.data.worlds.new("LumenWorld")
    world.color = (0.20, 0.28, 0.40)
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.20, 0.28, 0.40, 1.0)
    bg.inputs["Strength"].default_value = 1.0
    scene.world = world

    if args.variant != "no-camera":
        cam_data = bpy.data.cameras.new("LumenCamera")
        cam = bpy.data.objects.new("LumenCamera", cam_data)
        scene.collection.objects.link(cam)
        cam.location = (0.0, -9.0, 4.5)
        cam.rotation_euler = (math.radians(66.0), 0.0, 0.0)
        scene.camera = cam

    sun_data = bpy.data.lights.new("LumenSun", type="SUN")
    sun_data.energy = 3.0
    sun = bpy.data.objects.new("LumenSun", sun_data)
    sun.rotation_euler = (math.radians(40.0), math.radians(20.0), math.radians(30.0))
    scene.collection.objects.link(sun)

    texture = args.texture if args.variant == "external-texture" else None
    lay = layout(args.seed)
    add_object(
        "Ground",
        bpy.ops.mesh.primitive_plane_add,
        material("GroundMat", (0.55, 0.55, 0.50), texture),
        size=14.0,
        location=(0.0, 0.0, -1.0),
    )
    cube = add_object(
        "Cube",
        bpy.ops.mesh.primitive_cube_add,
        material("Red", lay["red"]),
        size=lay["cube_size"],
        location=(lay["cube_x"], 0.0, 0.0),
    )
    ball = add_object(
        "Ball",
        bpy.ops.mesh.primitive_uv_sphere_add,
        material("Green", lay["green"]),
        radius=lay["ball_radius"],
        segments=24,
        ring_count=12,
        location=(0.0, 1.0, 0.0),
    )
    cone = add_object(
        "Cone",
        bpy.ops.mesh.primitive_cone_add,
        material("Blue", lay["blue"]),
        radius1=0.8,
        depth=1.8,
        location=(lay["cone_x"], 0.0, 0.0),
    )

    # Animation: every frame differs from its neighbours.
    first, last = scene.frame_start, scene.frame_end
    for frame, t in ((first, 0.0), (last, 1.0)):
        scene.frame_set(frame)
        cube.rotation_euler = (0.0, 0.0, t * math.pi * lay["cube_turn"])
        cube.keyframe_insert("rotation_euler", frame=frame)
        ball.location = (lay["ball_from"] + lay["ball_travel"] * t, lay["ball_y"], 0.0)
        ball.keyframe_insert("location", frame=frame)
        cone.location = (lay["cone_x"], 0.0, lay["cone_rise"] * t)
        cone.keyframe_insert("location", frame=frame)
        cone.rotation_euler = (0.0, t * math.pi / 2.0, 0.0)
        cone.keyframe_insert("rotation_euler", frame=frame)
    scene.frame_set(first)

    bpy.ops.wm.save_as_mainfile(filepath=args.out, compress=args.compress, relative_remap=False)


def main():
    args = parse_args()
    build(args)
    print("lumen: saved sample scene to", args.out, flush=True)


main()

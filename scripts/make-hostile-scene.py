"""Turn a sample scene into a hostile one, for the render sandbox's tests.

Run inside Blender on a scene made by scripts/make-sample-scene.py, with
auto-run disabled so that nothing hostile runs while the file is built:

    blender -b --factory-startup --disable-autoexec BASE.blend \
        --python scripts/make-hostile-scene.py -- \
        --out FILE --attack ATTACK [--path PATH] [--port PORT]

Attacks:
  file-output      a compositor File Output node, fed the rendered image,
                   writes to --path (absolute, or `//…` relative to the .blend)
  file-output-in-group
                   the same node inside a node group (named like the scene's
                   own compositor tree, "Compositing Nodetree")
  python-driver    a driver on an object's location runs Python from a text
                   block: it writes "escaped" to --path, then connects to
                   127.0.0.1:--port and sends "escaped"
  autorun-script   the same Python in a text block registered to run when the
                   file loads (Text > Register)
  absolute-output  the scene's own output path (Output Properties) is --path

The Python of the last two attacks prints what it managed
(`LUMEN-PAYLOAD wrote`, `LUMEN-PAYLOAD connected`) and what failed.
"""

import argparse
import sys

import bpy


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="make-hostile-scene.py")
    p.add_argument("--out", required=True, help="where to save the .blend")
    p.add_argument(
        "--attack",
        required=True,
        choices=[
            "file-output",
            "file-output-in-group",
            "python-driver",
            "autorun-script",
            "absolute-output",
        ],
    )
    p.add_argument("--path", default="/tmp/lumen-escape", help="where the attack writes")
    p.add_argument("--port", type=int, default=9, help="local TCP port the Python connects to")
    return p.parse_args(argv)


def payload(path, port):
    return f"""
import socket
try:
    with open({path!r}, "w") as f:
        f.write("escaped")
    print("LUMEN-PAYLOAD wrote", {path!r}, flush=True)
except OSError as e:
    print("LUMEN-PAYLOAD cannot write", {path!r}, e, flush=True)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"escaped")
    print("LUMEN-PAYLOAD connected", {port}, flush=True)
except OSError as e:
    print("LUMEN-PAYLOAD cannot connect", {port}, e, flush=True)
"""


def main():
    args = parse_args()
    scene = bpy.context.scene
    if args.attack in ("file-output", "file-output-in-group"):
        scene.use_nodes = True
        tree = scene.node_tree
        layers = next(n for n in tree.nodes if n.type == "R_LAYERS")
        if args.attack == "file-output":
            inner, source = tree, layers.outputs["Image"]
        else:
            inner = bpy.data.node_groups.new("Compositing Nodetree", "CompositorNodeTree")
            inner.inputs.new("NodeSocketColor", "Image")
            group = tree.nodes.new("CompositorNodeGroup")
            group.node_tree = inner
            tree.links.new(layers.outputs["Image"], group.inputs[0])
            source = inner.nodes.new("NodeGroupInput").outputs[0]
        node = inner.nodes.new("CompositorNodeOutputFile")
        node.name = "Escape"
        node.base_path = args.path
        node.format.file_format = "PNG"
        inner.links.new(source, node.inputs[0])
    elif args.attack == "python-driver":
        text = bpy.data.texts.new("payload")
        text.write(payload(args.path, args.port))
        target = next(o for o in bpy.data.objects if o.type == "MESH")
        driver = target.driver_add("location", 0).driver
        driver.type = "SCRIPTED"
        driver.expression = "exec(bpy.data.texts['payload'].as_string()) or 0"
    elif args.attack == "autorun-script":
        text = bpy.data.texts.new("payload.py")
        text.write(payload(args.path, args.port))
        text.use_module = True
    elif args.attack == "absolute-output":
        scene.render.filepath = args.path
    bpy.ops.wm.save_as_mainfile(filepath=args.out)


main()

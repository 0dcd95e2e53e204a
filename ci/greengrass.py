"""Lays out published components as AWS IoT Greengrass v2 installs them on a device, and prints
their lifecycle scripts with Greengrass's recipe variables filled in, so the CI scripts can run
a component's Install and Run steps as a device would (no Greengrass nucleus needed).

    python ci/greengrass.py install ROOT ARCH COMPONENT_DIR...
        copies each component's artifacts (for ARCH: amd64 or aarch64) to
        ROOT/packages/artifacts/<name>/<version>/ with the recipe's permissions, and makes
        ROOT/work/<name>/ and ROOT/packages/recipes/<name>-<version>.json
    python ci/greengrass.py script ROOT ARCH NAME STEP SOCKET
        prints the STEP (Install, Run) script of installed component NAME
"""
import json
import os
import shutil
import sys


def manifest(recipe, arch):
    for m in recipe["Manifests"]:
        if m["Platform"]["architecture"] in (arch, "*"):
            return m
    sys.exit(f"{recipe['ComponentName']}: no manifest for {arch}")


def install(root, arch, published):
    recipe = json.load(open(os.path.join(published, "recipe.json")))
    name, version = recipe["ComponentName"], recipe["ComponentVersion"]
    dest = os.path.join(root, "packages", "artifacts", name, version)
    os.makedirs(dest, exist_ok=True)
    os.makedirs(os.path.join(root, "work", name), exist_ok=True)
    os.makedirs(os.path.join(root, "packages", "recipes"), exist_ok=True)
    shutil.copy(os.path.join(published, "recipe.json"), os.path.join(root, "packages", "recipes", f"{name}-{version}.json"))
    for a in manifest(recipe, arch).get("Artifacts", []):
        file = a["URI"].rsplit("/", 1)[1]
        shutil.copy(os.path.join(published, file), os.path.join(dest, file))
        execute = a.get("Permission", {}).get("Execute", "NONE") != "NONE"
        os.chmod(os.path.join(dest, file), 0o755 if execute else 0o644)
    print(f"{name} {version} -> {dest}")


def script(root, arch, name, step, socket):
    recipes = os.path.join(root, "packages", "recipes")
    found = [f for f in os.listdir(recipes) if f.startswith(name + "-")]
    recipe = json.load(open(os.path.join(recipes, sorted(found)[-1])))
    version = recipe["ComponentVersion"]
    arts = lambda n, v: os.path.join(root, "packages", "artifacts", n, v)  # noqa: E731
    s = manifest(recipe, arch)["Lifecycle"][step]
    s = s["Script"] if isinstance(s, dict) else s
    for dep in recipe.get("ComponentDependencies", {}):
        dep_dir = os.path.join(root, "packages", "artifacts", dep)
        dep_version = sorted(os.listdir(dep_dir))[-1] if os.path.isdir(dep_dir) else "?"
        s = s.replace("{%s:artifacts:path}" % dep, arts(dep, dep_version))
    s = s.replace("{configuration:/Socket}", socket)
    config = recipe.get("ComponentConfiguration", {}).get("DefaultConfiguration", {})
    for key, value in config.items():
        s = s.replace("{configuration:/%s}" % key, str(value))
    s = s.replace("{artifacts:path}", arts(name, version)).replace("{work:path}", os.path.join(root, "work", name))
    s = s.replace("{kernel:rootPath}", root)
    if "{" in s:
        sys.exit(f"unfilled recipe variable in: {s}")
    print(s)


if __name__ == "__main__":
    cmd, root, arch = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    if cmd == "install":
        for d in sys.argv[4:]:
            install(root, arch, d)
    elif cmd == "script":
        script(root, arch, sys.argv[4], sys.argv[5], sys.argv[6])
    else:
        sys.exit(__doc__)

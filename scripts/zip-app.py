"""Zips a function app folder for zip deployment: every file, with its Unix mode
(the handler stays executable), except local.settings.json, which holds local
emulator settings and must never reach Azure.
    python3 scripts/zip-app.py dist/reader dist/reader.zip"""

import os
import sys
import zipfile

LOCAL_ONLY = {"local.settings.json"}


def zip_app(folder, out):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for root, _, files in os.walk(folder):
            for f in sorted(files):
                path = os.path.join(root, f)
                name = os.path.relpath(path, folder)
                if name not in LOCAL_ONLY:
                    z.write(path, name)


if __name__ == "__main__":
    zip_app(sys.argv[1], sys.argv[2])

"""Build time: the machine-readable (DEP-5) copyright file covering dropsonde
and every wheel bundled in the package, from each wheel's own metadata and
license files, so it cannot drift from what is actually shipped.

    python3 packaging/copyright.py [--common-licenses] SITE_DIR INSTALLED_PREFIX OUT_FILE
writes OUT_FILE and prints the SPDX expression of all licenses (for the rpm
``License:`` tag). With --common-licenses (Debian), a license Debian keeps in
/usr/share/common-licenses is referred to there instead of repeated, as
Debian policy asks; the wheel's own notices (NOTICE files) stay. A wheel whose license cannot be identified stops the build:
someone has to look at it before it ships.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Dict, List, Optional

# License: fields and trove classifiers as wheels write them, to SPDX.
KNOWN = {
    "mit": "MIT", "mit license": "MIT", "expat": "MIT",
    "apache-2.0": "Apache-2.0", "apache 2.0": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
    "isc": "ISC", "isc license": "ISC", "isc license (iscl)": "ISC",
    "mpl-2.0": "MPL-2.0", "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "psf-2.0": "PSF-2.0", "python software foundation license": "PSF-2.0",
}
# "Copyright (c) 2013 Name", "Copyright 2013-2020 Name", "(c) 2013 Name"; not "copyright license to ...".
_COPYRIGHT_RE = re.compile(r"^\s*(?:copyright\s+(?:\(c\)|©)\s*|copyright\s+(?=\d{4})|\(c\)\s+(?=\d{4}))(.+)$",
                           re.IGNORECASE)


@dataclass
class Bundled:
    name: str
    version: str
    license: str
    holders: List[str]
    text: str
    paths: List[str]
    texts: List[str]  # each license file's text, in file-name order


def _license_from_text(text: str) -> Optional[str]:
    """For "BSD License" classifiers and bare license files: which BSD, MIT or Apache text it is."""
    lowered = " ".join(text.lower().split())
    if "apache license" in lowered and "version 2.0" in lowered:
        return "Apache-2.0"
    if "redistribution and use in source and binary forms" in lowered:
        return "BSD-3-Clause" if "neither the name" in lowered or "endorse or promote" in lowered else "BSD-2-Clause"
    if "permission is hereby granted, free of charge" in lowered:
        return "MIT"
    return None


def identify_license(meta, text: str) -> Optional[str]:
    """SPDX id: License-Expression, else a short License field, else classifiers, else the text."""
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    field = (meta.get("License") or "").strip()
    if field and len(field) < 60 and field.lower() in KNOWN:
        return KNOWN[field.lower()]
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License :: "):
            name = classifier.split(" :: ")[-1].lower()
            if name in KNOWN:
                return KNOWN[name]
    return _license_from_text(text)


def _holders(text: str, meta) -> List[str]:
    found: List[str] = []
    for line in text.splitlines():
        match = _COPYRIGHT_RE.match(line)
        if match and "[yyyy]" not in line and match.group(1).strip() not in found:
            found.append(match.group(1).strip())
    if not found:
        author = meta.get("Author") or meta.get("Author-email") or meta.get("Maintainer-email")
        found.append(f"the {meta['Name']} authors ({author.strip()})" if author else f"the {meta['Name']} developers")
    return found[:6]


def _installed_paths(dist_info: Path) -> List[str]:
    """Top-level files and directories the wheel installed (from its RECORD)."""
    tops = set()
    for line in (dist_info / "RECORD").read_text(encoding="utf-8").splitlines():
        path = line.rsplit(",", 2)[0]
        if path and not path.startswith(".."):
            tops.add(path.split("/")[0])
    tops.add(dist_info.name)
    return sorted(tops)


def bundled(site: Path) -> List[Bundled]:
    """Every distribution installed in ``site``, with its license and copyright notices."""
    found = []
    for dist_info in sorted(site.glob("*.dist-info")):
        meta = HeaderParser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
        files = sorted(p for p in dist_info.rglob("*") if p.is_file() and
                       (p.parent.name == "licenses" or p.name.upper().startswith(("LICENSE", "COPYING", "NOTICE"))))
        texts = [p.read_text(encoding="utf-8", errors="replace").strip() for p in files]
        text = "\n\n".join(texts)
        license_id = identify_license(meta, text)
        if license_id is None or not text:
            raise SystemExit(f"packaging/copyright.py: {dist_info.name}: cannot identify its license "
                             "(no License-Expression, known License field or classifier, or no license file)")
        found.append(Bundled(meta["Name"], meta["Version"], license_id, _holders(text, meta), text,
                             _installed_paths(dist_info), texts))
    return found


# Licenses whose full text every Debian system has (base-files).
COMMON_LICENSES = {"Apache-2.0", "MPL-2.0", "CC0-1.0"}
_APACHE_START = re.compile(r"^\s*Apache License\s*$", re.MULTILINE)


def license_text(item: Bundled, common_licenses: bool) -> str:
    """The text to show under License:; on Debian a common license is a pointer plus the wheel's own notices."""
    terms = set(re.findall(r"[A-Za-z0-9.+-]+", item.license)) - {"AND", "OR", "WITH"}
    if common_licenses and item.license not in COMMON_LICENSES and terms & COMMON_LICENSES:
        # a compound expression ("Apache-2.0 OR BSD-2-Clause"): the other licenses' texts stay,
        # the common one's full text becomes the pointer
        pointers = [f"On Debian systems, the complete text of the {term} license can be found in\n"
                    f"/usr/share/common-licenses/{term}." for term in sorted(terms & COMMON_LICENSES)]
        kept = [text for text in item.texts if _license_from_text(text) not in COMMON_LICENSES]
        return "\n\n".join(kept + pointers)
    if not (common_licenses and item.license in COMMON_LICENSES):
        return item.text
    pointer = (f"On Debian systems, the complete text of the {item.license} license can be found in\n"
               f"/usr/share/common-licenses/{item.license}.")
    notices = [part for part in item.text.split("\n\n") if part.strip() and item.license == "Apache-2.0"
               and not _APACHE_START.search(part) and "NOTICE" in part.upper()[:200]]
    return "\n\n".join([pointer] + notices)


def _field_text(text: str) -> str:
    """A DEP-5 multi-line field body: each line indented, blank lines as " ."."""
    return "\n".join(f" {line}" if line.strip() else " ." for line in text.splitlines())


def dep5(items: List[Bundled], prefix: str, common_licenses: bool = False) -> str:
    parts = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: dropsonde\n"
        "Comment: dropsonde bundles the Python libraries it runs on, as wheels installed\n"
        f" under /{prefix}; each is listed below with its own license.\n"
    ]
    own = next(item for item in items if item.name == "dropsonde")
    parts.append(f"Files: *\nCopyright: {own.holders[0]}\nLicense: {own.license}\n{_field_text(license_text(own, common_licenses))}\n")
    for item in items:
        if item is own:
            continue
        paths = "\n       ".join(f"{prefix}/{path}" + ("/*" if "." not in path or path.endswith("-info") else "")
                                  for path in item.paths)
        holders = "\n           ".join(item.holders)
        parts.append(f"Files: {paths}\nCopyright: {holders}\nComment: {item.name} {item.version}\n"
                     f"License: {item.license}\n{_field_text(license_text(item, common_licenses))}\n")
    return "\n".join(parts)


def main(argv: List[str]) -> None:
    common_licenses = "--common-licenses" in argv
    argv = [arg for arg in argv if arg != "--common-licenses"]
    site, prefix, out = Path(argv[1]), argv[2].strip("/"), Path(argv[3])
    items = bundled(site)
    out.write_text(dep5(items, prefix, common_licenses), encoding="utf-8")
    licenses: Dict[str, None] = {}
    for item in items:
        licenses.setdefault(item.license, None)
    print(" AND ".join(f"({l})" if " " in l else l for l in licenses))


if __name__ == "__main__":
    main(sys.argv)

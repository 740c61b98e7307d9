"""The names a report may carry as they are: the probe reports a name only
when it is one of these (anything else is private or a placeholder), and the
collector accepts a report only when its names are. Pure data and functions:
the collector imports this without the probe's file readers.
"""

from __future__ import annotations

import re
from typing import Optional

FORGE_NAME_RE = re.compile(r"^([A-Za-z0-9]+)[-/]([a-z][a-z0-9_]*)$")


def normalize_slug(name: str) -> Optional[str]:
    """``author/name`` or ``author-name`` as the Forge's ``author-name``, or None if neither."""
    match = FORGE_NAME_RE.match(name.strip()) if isinstance(name, str) else None
    if not match:
        return None
    return f"{match.group(1).lower()}-{match.group(2)}"


# The values Facter itself gives os.family (and the legacy osfamily fact):
# named Linux families, the kernel name for other Linux distributions and
# other Unixes, and "windows". Anything else an agent reports (a custom fact
# overriding os, a typo) may be private, so it is counted as OTHER_FAMILY.
FACTER_OS_FAMILIES = frozenset(
    {
        "AIX", "Alpine", "Archlinux", "Coreos", "Darwin", "Debian", "DragonFly", "FreeBSD", "GNU",
        "Gentoo", "HP-UX", "Linux", "Mandrake", "NetBSD", "OpenBSD", "RedHat", "Solaris", "Suse",
        "VMkernel", "windows",
    }
)
OTHER_FAMILY = "other"


# Method names that are provably public: those Ruby itself (core and standard
# library) gives to a Puppetfile's top level, where r10k and Code Manager
# evaluate it. Any other name called in a Puppetfile was defined by the site,
# so the Puppetfile metric counts it under a placeholder instead.
#
# Kernel's and Object's instance methods (public and private) of Ruby 3.x, the
# private methods of the top-level ``main`` object, and the Kernel conversion
# methods that standard libraries add (``JSON``, ``URI``, ``Pathname``, ...).
RUBY_CORE_METHODS = frozenset(
    """
    Array Complex Float Hash Integer Rational String
    __callee__ __dir__ __method__ __id__ __send__
    abort at_exit autoload autoload? binding block_given? callcc caller caller_locations
    catch eval exec exit exit! fail fork format gets global_variables iterator? lambda
    load local_variables loop open p pp print printf proc putc puts raise rand readline
    readlines require require_relative select set_trace_func sleep spawn sprintf srand
    syscall system test throw trace_var trap untrace_var warn
    class clone define_singleton_method display dup enum_for extend freeze frozen? hash
    inspect instance_of? instance_variable_defined? instance_variable_get
    instance_variable_set instance_variables instance_eval instance_exec is_a? itself
    kind_of? method methods nil? object_id public_method public_send respond_to? send
    singleton_class singleton_method singleton_methods tap then to_enum to_s yield_self
    equal? instance_variable_remove remove_instance_variable private_methods
    protected_methods public_methods
    include public private define_method using
    gem gem_original_require require_gem
    JSON URI Pathname BigDecimal DelegateClass Digest
    """.split()
)

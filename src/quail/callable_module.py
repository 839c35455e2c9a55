"""Let `quail.unlearn(...)`, `quail.evaluate(...)` and `quail.analyze(...)` be calls while
`quail.unlearn.METHODS` and friends stay reachable: the package module forwards a call to its
main function. (A plain function in quail/__init__.py would be shadowed by the subpackage of
the same name as soon as anything imports it.)"""

import sys
import types


def make_callable(module_name: str, function_name: str) -> None:
    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(self, function_name)(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule

"""``Module``: the base class of every layer and model.

Matches: ``torch.nn.Module``. Assigning a :class:`Parameter`, a Module or (via
``register_buffer``) a buffer to an attribute registers it in insertion-ordered dicts, from which
``parameters()``, ``state_dict()``, ``train()``, ``zero_grad()`` ... walk the tree.

ember addition: every module knows its *path* in the model (``features.0``), set when it is
attached to a parent, so that errors and diagnostics can say which layer is at fault
(``Conv2d 'features.0': expected input of shape (N, 3, H, W), got (32, 28, 28)``).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict, namedtuple

from .. import ops
from ..autograd import Tensor
from ..autograd.grad_mode import no_grad
from ..ops import dtypes as _dt
from .parameter import Buffer, Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _WithKwargs:
    """A forward (pre-)hook registered with ``with_kwargs=True``: it also receives the keyword
    arguments of the call."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


#: a module's own bookkeeping attributes: never shadowed by a member of the same name
_RESERVED = frozenset({"training", "_parameters", "_buffers", "_non_persistent", "_modules",
                       "_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_path"})


class _Members(OrderedDict):
    """A module's ``_parameters``, ``_buffers`` or ``_modules``: an ordered dict that also keeps
    each entry in the module's instance ``__dict__``.

    ``model.fc1`` and ``self.weight`` are then ordinary attribute lookups (about 60 ns) instead of
    a miss followed by ``Module.__getattr__`` (about 800 ns), which adds up to several
    microseconds per batch-1 forward pass. The dict stays the one source of truth: every way of
    changing it (``d[k] = v``, ``del``, ``pop``, ``update`` ...) updates the copy, so code that
    edits ``module._parameters`` directly, as PyTorch code sometimes does, keeps working. Names
    defined on the class (methods, properties) and the module's own bookkeeping attributes are
    not copied: for them lookup behaves as before (the class wins, as in PyTorch).
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: Module):
        super().__init__()
        self._owner = weakref.ref(owner)

    def _mirror(self, key, value) -> None:
        owner = self._owner()
        if owner is not None and key not in _RESERVED and not hasattr(type(owner), key):
            owner.__dict__[key] = value

    def _unmirror(self, key) -> None:
        owner = self._owner()
        if owner is not None and key not in _RESERVED:
            owner.__dict__.pop(key, None)

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self._mirror(key, value)

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self._unmirror(key)

    _missing = object()

    def pop(self, key, default=_missing):
        if key in self:
            value = super().pop(key)
            self._unmirror(key)
            return value
        if default is _Members._missing:
            raise KeyError(key)
        return default

    def popitem(self, last: bool = True):
        key, value = super().popitem(last)
        self._unmirror(key)
        return key, value

    def clear(self) -> None:
        for key in list(self):
            self._unmirror(key)
        super().clear()

    def update(self, *args, **kwargs) -> None:
        for key, value in OrderedDict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other):
        self.update(other)
        return self

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> OrderedDict:
        return OrderedDict(self)

    def __reduce__(self):
        return OrderedDict, (list(self.items()),)


class Module:
    """Base class for layers and models: subclass it, create sub-layers in ``__init__``, and
    define ``forward``.

    Example:
        >>> import ember
        >>> class TwoLayer(ember.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc1 = ember.nn.Linear(4, 8)
        ...         self.fc2 = ember.nn.Linear(8, 2)
        ...     def forward(self, x):
        ...         return self.fc2(ember.relu(self.fc1(x)))
        >>> TwoLayer()(ember.randn(3, 4)).shape
        (3, 2)
    """

    training: bool
    _version = 1

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = _Members(self)
        d["_buffers"] = _Members(self)
        d["_non_persistent"] = set()
        d["_modules"] = _Members(self)
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_backward_hooks"] = OrderedDict()
        d["_path"] = ""

    # ------------------------------------------------------------------ attribute registration
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called; "
                                 f"call super().__init__() first in {type(self).__name__}")
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if name in ("_parameters", "_buffers", "_modules"):  # a whole registry replaced
            d[name].clear()  # (drops the old members from __dict__)
            members = d[name] = _Members(self)
            members.update(value)
            return
        if isinstance(value, Parameter):
            self._discard(name)
            params[name] = value
        elif isinstance(value, Module):
            self._discard(name)
            modules[name] = value
            value._set_path(self._child_path(name))
        elif isinstance(value, Buffer):
            self.register_buffer(name, value, persistent=value.persistent)
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} of "
                                f"{self._label()} (expected an ember.nn.Parameter or None)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule {name!r} "
                                f"of {self._label()} (expected a Module or None)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r} of "
                                f"{self._label()} (expected a Tensor or None)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def _discard(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            self.__dict__[store].pop(name, None)
        self.__dict__.pop(name, None) if name in self.__dict__ and name not in (
            "training",) else None

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a Parameter or None) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._check_name(name, "register_parameter")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register a non-learnable tensor (e.g. running statistics) saved in the state dict
        unless ``persistent=False``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._check_name(name, "register_buffer")
        self._discard(name)
        if isinstance(tensor, Buffer):
            tensor = Tensor._make(tensor._data)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_module(self, name: str, module) -> None:
        self.add_module(name, module)

    def add_module(self, name: str, module) -> None:
        """Register a submodule (or None) under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got "
                            f"{type(module).__name__}")
        self._check_name(name, "add_module")
        self._discard(name)
        self._modules[name] = module
        if module is not None:
            module._set_path(self._child_path(name))

    def _check_name(self, name, where: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{where}: name must be a non-empty string without '.', got {name!r}")

    def get_submodule(self, target: str) -> Module:
        mod = self
        for part in target.split(".") if target else []:
            if part not in mod._modules:
                raise AttributeError(f"get_submodule: {mod._label()} has no submodule {part!r}")
            mod = mod._modules[part]
        return mod

    def get_parameter(self, target: str) -> Parameter:
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"get_parameter: {mod._label()} has no parameter {name!r}")
        return mod._parameters[name]

    # ------------------------------------------------------------------ paths and errors
    def _child_path(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def _set_path(self, path: str) -> None:
        self.__dict__["_path"] = path
        for name, child in self._modules.items():
            if child is not None:
                child._set_path(f"{path}.{name}" if path else name)

    @property
    def path(self) -> str:
        """This module's dotted name in the model it was last attached to ('' for a root)."""
        return self._path

    def _label(self) -> str:
        return f"{type(self).__name__} '{self._path}'" if self._path else type(self).__name__

    def _error(self, message: str, kind=ValueError):
        """An exception whose message starts with this module's type and path."""
        return kind(f"{self._label()}: {message}")

    # ------------------------------------------------------------------ forward and hooks
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks):
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            if type(hook) is _WithKwargs:
                result = hook.fn(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise self._error(f"forward pre-hook registered with_kwargs=True must "
                                          f"return None or a tuple (args, kwargs), got "
                                          f"{type(result).__name__}", RuntimeError)
                    args, kwargs = result
                    args = args if isinstance(args, tuple) else (args,)
                continue
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        if self._backward_hooks:
            from .hooks import BackwardHookState

            state = BackwardHookState(self)
            args = state.wrap_inputs(args)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            if type(hook) is _WithKwargs:
                result = hook.fn(self, args, kwargs, out)
            else:
                result = hook(self, args, out)
            if result is not None:
                out = result
        if self._backward_hooks:
            out = state.wrap_outputs(out)
        return out

    @staticmethod
    def _add_hook(hooks: dict, hook, prepend: bool) -> RemovableHandle:
        handle = RemovableHandle(hooks)
        if prepend:  # keep the same dict object: handles remove from it
            rest = list(hooks.items())
            hooks.clear()
            hooks[handle.id] = hook
            hooks.update(rest)
        else:
            hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args)`` before forward; may return replacement args.

        With ``with_kwargs=True`` it is ``hook(module, args, kwargs)`` and may return a pair
        ``(args, kwargs)``; ``prepend=True`` runs it before the hooks already registered.
        Matches ``torch.nn.Module.register_forward_pre_hook``.
        """
        return self._add_hook(self._forward_pre_hooks,
                              _WithKwargs(hook) if with_kwargs else hook, prepend)

    def register_forward_hook(self, hook, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args, output)`` after forward; may return a replacement output.

        With ``with_kwargs=True`` it is ``hook(module, args, kwargs, output)``; ``prepend=True``
        runs it before the hooks already registered. Matches
        ``torch.nn.Module.register_forward_hook``.
        """
        return self._add_hook(self._forward_hooks,
                              _WithKwargs(hook) if with_kwargs else hook, prepend)

    def register_full_backward_hook(self, hook) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` when the gradients with respect to the
        module's inputs are computed; may return replacement ``grad_input``."""
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        return handle

    register_backward_hook = register_full_backward_hook

    # ------------------------------------------------------------------ traversal
    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True):
        """(dotted name, parameter) pairs, each parameter once by default."""
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, p in mod._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, b in mod._buffers.items():
                if b is None or (remove_duplicate and id(b) in seen):
                    continue
                seen.add(id(b))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), b

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(dotted name, module) for this module and every descendant, depth first."""
        stack = [(prefix, self)]
        seen = set() if memo is None else memo
        out = []
        while stack:
            name, mod = stack.pop()
            if remove_duplicate:
                if id(mod) in seen:
                    continue
                seen.add(id(mod))
            out.append((name, mod))
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()
                    if m is not None]
            stack.extend(reversed(kids))
        return iter(out)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ modes and updates
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch norm updating statistics) recursively."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient (to None by default, like PyTorch)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every submodule (children first) and on self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply_to_tensors(self, fn) -> Module:
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    with no_grad():
                        new = fn(p)
                    if new is not p:
                        p._data = new._data
                        if p.grad is not None:
                            p.grad = fn(p.grad)
            for name, b in m._buffers.items():
                if b is not None:
                    m._buffers[name] = fn(b)
        return self

    def to(self, *args, dtype=None, device=None) -> Module:
        """Convert floating-point parameters and buffers: ``to(ember.float64)``, ``to("cpu")``."""
        for a in args:
            if isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "mps", "meta"):
                device = a
            else:
                dtype = a
        if device is not None:
            from ..autograd.tensor import check_device

            check_device(device)
        if dtype is None:
            return self
        target = _dt.as_dtype(dtype)
        if not target.is_floating_point:
            raise TypeError(f"Module.to: only floating-point dtypes are supported, got {target}")
        return self._apply_to_tensors(
            lambda t: t.to(target) if t.is_floating_point() else t)

    def float(self) -> Module:
        return self.to(_dt.float32)

    def double(self) -> Module:
        return self.to(_dt.float64)

    def half(self) -> Module:
        return self.to(_dt.float16)

    def cpu(self) -> Module:
        return self

    # ------------------------------------------------------------------ state dict
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        """Parameters and persistent buffers by dotted name (detached unless ``keep_vars``)."""
        out = OrderedDict() if destination is None else destination
        for mod_prefix, mod in self.named_modules(prefix=prefix.rstrip("."),
                                                  remove_duplicate=False):
            base = f"{mod_prefix}." if mod_prefix else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else p.detach()
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    out[base + name] = b if keep_vars else b.detach()
            extra = getattr(mod, "get_extra_state", None)
            if extra is not None:
                out[base + "_extra_state"] = extra()
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy values from ``state_dict`` (ember tensors, NumPy arrays, or anything array-like,
        e.g. PyTorch tensors) into this module's parameters and buffers.

        Raises a RuntimeError listing missing, unexpected and wrongly shaped keys (missing and
        unexpected only when ``strict``). Returns ``(missing_keys, unexpected_keys)``.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if key.endswith("_extra_state"):
                continue
            arr = value._data if isinstance(value, Tensor) else ops.as_array(value)
            if tuple(arr.shape) != tuple(target.shape):
                problems.append(f"size mismatch for {key}: copying a param with shape "
                                f"{tuple(arr.shape)} from the state dict, the shape in the "
                                f"current model is {tuple(target.shape)}")
        if strict:
            if missing:
                problems.insert(0, "Missing key(s) in state_dict: " +
                                ", ".join(f'"{k}"' for k in missing))
            if unexpected:
                problems.insert(1 if missing else 0, "Unexpected key(s) in state_dict: " +
                                ", ".join(f'"{k}"' for k in unexpected))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(problems))
        with no_grad():
            for key, target in own.items():
                if key not in state_dict or key.endswith("_extra_state"):
                    if key.endswith("_extra_state") and key in state_dict:
                        mod = self.get_submodule(key.rpartition(".")[0])
                        mod.set_extra_state(state_dict[key])
                    continue
                value = state_dict[key]
                arr = value._data if isinstance(value, Tensor) else ops.as_array(value)
                if assign:
                    target._data = ops.as_array(arr, target._data.dtype).copy()
                else:
                    ops.copy_into(target._data, arr)
                    target._version[0] += 1
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """One line of this module's settings, shown by ``repr`` (override in layers)."""
        return ""

    def __repr__(self) -> str:
        # PyTorch's layout: a one-line extra_repr stays inline when there are no children
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + repr(m).replace("\n", "\n  ")
                       for name, m in self._modules.items()]
        lines = extra_lines + child_lines
        main = type(self).__name__ + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) |
                      set(self._modules))

    def __getstate__(self):
        raise TypeError("ember modules cannot be pickled; save model.state_dict() with "
                        "ember.save (safetensors) instead")

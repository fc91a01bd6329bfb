"""The C library through ctypes: finding and loading libmobileclip.so, the
structs of include/mobileclip.h mirrored field by field, the function
prototypes, and turning an mc_error into a Python exception.

Only the public header's functions are used.  The library is a ctypes.CDLL,
so every call releases the GIL for its duration (ctypes.PyDLL would keep it).
"""
import ctypes
import enum
import os
import shutil
import subprocess
import threading

SONAME_MAJOR = 0
SONAME = "libmobileclip.so.%d" % SONAME_MAJOR
LIB_ENV = "MOBILECLIP_LIB"

MC_ERROR_MESSAGE_MAX = 1024


class Status(enum.IntEnum):
    """mc_status: the library's result codes (include/mobileclip.h)."""
    OK = 0
    INVALID_ARG = 1
    IO = 2
    FORMAT = 3
    UNSUPPORTED = 4
    MISSING_TENSOR = 5
    UNEXPECTED_TENSOR = 6
    SHAPE = 7
    NOMEM = 8
    IMAGE = 9
    TOKENIZER = 10
    CONFIG = 11
    NETWORK = 12
    CHECKSUM = 13
    NOT_FOUND = 14
    INTERNAL = 15


class Error(Exception):
    """An error the C library reported.

    Attributes: ``status`` (a :class:`Status`), ``message`` (the library's
    message, which names the file, tensor or option at fault) and
    ``status_name`` (the library's description of the status, such as
    "I/O error").  ``str(error)`` is the message.
    """

    def __init__(self, status, message, status_name=None):
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.message = message
        self.status_name = status_name or str(status)
        super().__init__(message)

    def __reduce__(self):   # picklable (multiprocessing passes exceptions back)
        return (type(self), (int(self.status), self.message, self.status_name))


# ---- structs (the header's, field for field; tests/test_layout checks offsets) ----

class mc_error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int),
                ("message", ctypes.c_char * MC_ERROR_MESSAGE_MAX)]


class mc_preprocess_params(ctypes.Structure):
    _fields_ = [("size", ctypes.c_int),
                ("interp", ctypes.c_int),
                ("resize_mode", ctypes.c_int),
                ("mean", ctypes.c_float * 3),
                ("std", ctypes.c_float * 3),
                ("apply_exif", ctypes.c_int)]


class mc_image(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int),
                ("height", ctypes.c_int),
                ("rgb", ctypes.POINTER(ctypes.c_uint8))]


class mc_model_params(ctypes.Structure):
    _fields_ = [("config_path", ctypes.c_char_p),
                ("model_name", ctypes.c_char_p),
                ("vocab_path", ctypes.c_char_p),
                ("load_image_tower", ctypes.c_int),
                ("load_text_tower", ctypes.c_int),
                ("reparameterize", ctypes.c_int),
                ("load_tokenizer", ctypes.c_int),
                ("weight_dtype", ctypes.c_int)]


class mc_model_info(ctypes.Structure):
    _fields_ = [("family", ctypes.c_char_p),
                ("image_arch", ctypes.c_char_p),
                ("text_arch", ctypes.c_char_p),
                ("format", ctypes.c_int),
                ("image_size", ctypes.c_int),
                ("embed_dim", ctypes.c_int),
                ("context_length", ctypes.c_int),
                ("n_tensors", ctypes.c_int64),
                ("n_params", ctypes.c_int64),
                ("n_params_image", ctypes.c_int64),
                ("n_params_text", ctypes.c_int64),
                ("preprocess", mc_preprocess_params),
                ("logit_scale", ctypes.c_float)]


class mc_context_params(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int),
                ("max_batch", ctypes.c_int)]


class mc_index_params(ctypes.Structure):
    _fields_ = [("readonly", ctypes.c_int),
                ("create", ctypes.c_int)]


class mc_index_info(ctypes.Structure):
    _fields_ = [("count", ctypes.c_int64),
                ("dim", ctypes.c_int),
                ("model_id", ctypes.c_char * 256),
                ("model_path", ctypes.c_char * 4096)]


class mc_search_hit(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64),
                ("score", ctypes.c_float)]


class mc_index_image(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64),
                ("path", ctypes.c_char * 4096),
                ("width", ctypes.c_int),
                ("height", ctypes.c_int),
                ("size", ctypes.c_int64),
                ("mtime_ns", ctypes.c_int64)]


MC_INDEX_SKIP_COUNT = 2
INDEX_SKIP_REASONS = ("unreadable", "undecodable")
mc_index_skip_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)
mc_index_progress_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


class mc_index_update_params(ctypes.Structure):
    _fields_ = [("workers", ctypes.c_int),
                ("threads", ctypes.c_int),
                ("decode_threads", ctypes.c_int),
                ("batch", ctypes.c_int),
                ("reembed", ctypes.c_int),
                ("progress", mc_index_progress_fn),
                ("progress_user", ctypes.c_void_p),
                ("on_skip", mc_index_skip_fn),
                ("skip_user", ctypes.c_void_p)]


class mc_index_update_stats(ctypes.Structure):
    _fields_ = [("found", ctypes.c_int64),
                ("added", ctypes.c_int64),
                ("updated", ctypes.c_int64),
                ("removed", ctypes.c_int64),
                ("unchanged", ctypes.c_int64),
                ("skipped", ctypes.c_int64),
                ("skipped_by", ctypes.c_int64 * MC_INDEX_SKIP_COUNT),
                ("seconds", ctypes.c_double)]


# The structs a layout test compares with the C compiler's sizeof/offsetof.
STRUCTS = {
    "mc_error": mc_error,
    "mc_preprocess_params": mc_preprocess_params,
    "mc_image": mc_image,
    "mc_model_params": mc_model_params,
    "mc_model_info": mc_model_info,
    "mc_context_params": mc_context_params,
    "mc_index_params": mc_index_params,
    "mc_index_info": mc_index_info,
    "mc_search_hit": mc_search_hit,
    "mc_index_image": mc_index_image,
    "mc_index_update_params": mc_index_update_params,
    "mc_index_update_stats": mc_index_update_stats,
}

WEIGHT_DTYPES = {"f32": 0, "bf16": 1, "f16": 2, "int8": 3}
INTERP = {0: "bilinear", 1: "bicubic"}
RESIZE_MODE = {0: "shortest", 1: "squash"}
FILE_FORMAT = {0: "unknown", 1: "torch_zip", 2: "safetensors"}

_p = ctypes.POINTER
_vp = ctypes.c_void_p
_int = ctypes.c_int
_size = ctypes.c_size_t
_str = ctypes.c_char_p
_err = _p(mc_error)

# name: (result type, argument types)
PROTOTYPES = {
    "mc_status_string": (_str, [_int]),
    "mc_version": (_str, []),
    "mc_tokenizer_load": (_int, [_str, _p(_vp), _err]),
    "mc_tokenizer_free": (None, [_vp]),
    "mc_tokenizer_find_vocab": (_int, [_str, _str, _size, _err]),
    "mc_tokenizer_encode_n": (_int, [_vp, _str, _size, _int, _p(ctypes.c_int32), _err]),
    "mc_image_load": (_int, [_str, _int, _p(mc_image), _err]),
    "mc_image_load_memory": (_int, [_vp, _size, _int, _p(mc_image), _err]),
    "mc_image_free": (None, [_p(mc_image)]),
    "mc_image_resize_crop": (_int, [_p(mc_image), _int, _int, _int, _p(mc_image), _err]),
    "mc_image_to_tensor": (None, [_p(mc_image), _p(ctypes.c_float), _p(ctypes.c_float), _p(ctypes.c_float)]),
    "mc_image_preprocess_file": (_int, [_str, _p(mc_preprocess_params), _p(ctypes.c_float), _err]),
    "mc_model_default_params": (mc_model_params, []),
    "mc_official_model_name": (_str, [_size]),
    "mc_model_resolve": (_int, [_str, _int, _str, _size, _p(_str), _err]),
    "mc_model_load": (_int, [_str, _p(mc_model_params), _p(_vp), _err]),
    "mc_model_free": (None, [_vp]),
    "mc_model_get_info": (None, [_vp, _p(mc_model_info)]),
    "mc_model_tokenizer": (_vp, [_vp]),
    "mc_context_default_params": (mc_context_params, []),
    "mc_context_new": (_int, [_vp, _p(mc_context_params), _p(_vp), _err]),
    "mc_context_free": (None, [_vp]),
    "mc_context_last_error": (_err, [_vp]),
    "mc_encode_image": (_int, [_vp, _p(ctypes.c_float), _int, _int, _p(ctypes.c_float)]),
    "mc_encode_text": (_int, [_vp, _p(ctypes.c_int32), _int, _int, _p(ctypes.c_float)]),
    "mc_model_id": (_int, [_vp, _str, _size, _err]),
    "mc_zeroshot_classifiers": (None, [_p(ctypes.c_float), _int, _int, _int, _p(ctypes.c_float)]),
    "mc_zeroshot_probs": (None, [_p(ctypes.c_float), _p(ctypes.c_float), _int, _int, ctypes.c_float,
                                 _p(ctypes.c_double)]),
    "mc_index_default_params": (mc_index_params, []),
    "mc_index_open": (_int, [_str, _p(mc_index_params), _p(_vp), _err]),
    "mc_index_close": (None, [_vp]),
    "mc_index_get_info": (_int, [_vp, _p(mc_index_info), _err]),
    "mc_index_search": (_int, [_vp, _p(ctypes.c_float), _int, _int, _p(mc_search_hit), _p(_int), _err]),
    "mc_index_get_path": (_int, [_vp, ctypes.c_int64, _str, _size, _err]),
    "mc_index_get_image": (_int, [_vp, ctypes.c_int64, _p(mc_index_image), _err]),
    "mc_index_get_embedding": (_int, [_vp, ctypes.c_int64, _p(ctypes.c_float), _int, _err]),
    "mc_index_reload": (_int, [_vp, _err]),
    "mc_index_update_default_params": (mc_index_update_params, []),
    "mc_index_update": (_int, [_vp, _vp, _p(_str), _int, _p(mc_index_update_params), _p(mc_index_update_stats),
                               _err]),
}


# ---- finding the library ----

def _pkg_config_libdir():
    exe = shutil.which("pkg-config")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--variable=libdir", "mobileclip"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    d = out.stdout.strip()
    return d if out.returncode == 0 and d else None


def _candidates():
    """(description, path or soname) in search order; see find_library."""
    env = os.environ.get(LIB_ENV)
    if env:
        p = os.path.join(env, SONAME) if os.path.isdir(env) else env
        return [("$" + LIB_ENV, p)]
    out = []
    libdir = _pkg_config_libdir()
    for d in ([libdir] if libdir else []) + ["/usr/local/lib"]:
        p = os.path.join(d, SONAME)
        if os.path.exists(p):
            out.append(("installed", p))
            break
    own = os.path.join(os.path.dirname(os.path.abspath(__file__)), SONAME)
    if os.path.exists(own):
        out.append(("the package's copy", own))
    out.append(("the dynamic linker's search path", SONAME))
    return out


_lock = threading.Lock()
_lib = None
_lib_path = None


def lib():
    """The loaded library (loaded on first use), with prototypes set."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for where, path in _candidates():
            try:
                handle = ctypes.CDLL(path)
            except OSError as e:
                tried.append("%s (%s): %s" % (path, where, e))
                if where == "$" + LIB_ENV:
                    break
                continue
            for name, (res, args) in PROTOTYPES.items():
                fn = getattr(handle, name)
                fn.restype = res
                fn.argtypes = args
            version = handle.mc_version().decode()
            if version.split(".")[0] != str(SONAME_MAJOR):
                raise OSError("%s is mobileclip %s; this package needs %d.x" % (path, version, SONAME_MAJOR))
            _lib_path = _resolved_path(handle, path)
            _lib = handle
            return _lib
        raise OSError("cannot load the mobileclip library (%s); tried:\n  %s\n"
                      "Build it ('make' gives build/%s) and set %s to its path, or 'make install'."
                      % (SONAME, "\n  ".join(tried), SONAME, LIB_ENV))


def _resolved_path(handle, path):
    """The file the dynamic linker opened for handle (dladdr of a symbol)."""
    if os.sep in path:
        return os.path.realpath(path)

    class Dl_info(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]
    try:
        libdl = ctypes.CDLL(None)
        info = Dl_info()
        addr = ctypes.cast(handle.mc_version, ctypes.c_void_p)
        if libdl.dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        pass
    return path


def lib_path():
    """The path of the loaded library (loading it if needed)."""
    lib()
    return _lib_path


# ---- errors ----

def raise_error(err):
    """Raises Error from a filled mc_error."""
    L = lib()
    status = err.status
    name = L.mc_status_string(status)
    msg = err.message.decode("utf-8", "replace") or (name.decode() if name else "error %d" % status)
    raise Error(status, msg, name.decode() if name else None)


def check(status, err):
    if status != 0:
        if err.status == 0:
            err.status = status
        raise_error(err)


def fspath_bytes(path):
    """str, bytes or os.PathLike as the bytes the C library takes."""
    return os.fsencode(path)

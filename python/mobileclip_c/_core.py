"""Models, tokenizer, preprocessing, classification and search over the C
library (see the package docstring for the overview)."""
import concurrent.futures
import ctypes
import functools
import os
import sys
import threading
import weakref

import numpy as np

from . import _capi
from ._capi import Error, check

DEFAULT_TEMPLATE = "a photo of a {}."

_f32p = ctypes.POINTER(ctypes.c_float)
_i32p = ctypes.POINTER(ctypes.c_int32)


def _fptr(a):
    return a.ctypes.data_as(_f32p)


def _new_err():
    return _capi.mc_error()


# ---------------------------------------------------------------- library

def library_path():
    """The path of the libmobileclip.so in use (loading it if needed).

    Search order: ``$MOBILECLIP_LIB`` (a file, or a folder holding
    libmobileclip.so.0); the installed library (the ``libdir`` of
    pkg-config's ``mobileclip`` module, else /usr/local/lib: what
    ``make install`` writes); the copy inside this package (shipped when the
    package was built next to a built library, as ``pip install ./python``
    after ``make`` does); the dynamic linker's own search path
    (LD_LIBRARY_PATH, ldconfig).
    """
    return _capi.lib_path()


def library_version():
    """The C library's version string (mc_version())."""
    return _capi.lib().mc_version().decode()


def list_models():
    """The names of the official models, as ``load`` takes them (``mobileclip list``)."""
    L = _capi.lib()
    names, i = [], 0
    while True:
        n = L.mc_official_model_name(i)
        if n is None:
            return names
        names.append(n.decode())
        i += 1


# ---------------------------------------------------------------- tokenizer

class Tokenizer:
    """The CLIP byte-level BPE tokenizer of the C library.

    ``Tokenizer(vocab=None)`` loads the merges file; ``vocab`` None searches
    as the library does: ``$MOBILECLIP_VOCAB``, ./bpe_simple_vocab_16e6.txt.gz,
    the install's share folder.  Thread-safe: encoding reads the tokenizer only.
    """

    def __init__(self, vocab=None, _handle=None, _owner=None):
        self._owner = _owner   # a model whose tokenizer this is: keeps it alive
        if _handle is not None:
            self._h = _handle
            return
        L = _capi.lib()
        h = ctypes.c_void_p()
        err = _new_err()
        check(L.mc_tokenizer_load(_capi.fspath_bytes(vocab) if vocab is not None else None,
                                  ctypes.byref(h), ctypes.byref(err)), err)
        self._h = h
        weakref.finalize(self, L.mc_tokenizer_free, h)

    def __call__(self, texts, context_length=77):
        return self.encode(texts, context_length)

    def encode(self, texts, context_length=77):
        """Token ids of ``texts`` (a str or a sequence of str) as int32
        ``[len(texts), context_length]``: SOT, tokens, EOT, zero padding,
        truncated so that EOT stays last, exactly as open_clip's tokenizer."""
        if isinstance(texts, (str, bytes)):
            texts = [texts]
        texts = list(texts)
        if not isinstance(context_length, int) or context_length < 2:
            raise ValueError("context_length must be an integer >= 2, got %r" % (context_length,))
        L = _capi.lib()
        out = np.zeros((len(texts), context_length), dtype=np.int32)
        err = _new_err()
        for i, t in enumerate(texts):
            if isinstance(t, str):
                b = t.encode("utf-8", "surrogatepass")
            elif isinstance(t, bytes):
                b = t
            else:
                raise TypeError("text %d: expected str, got %s" % (i, type(t).__name__))
            st = L.mc_tokenizer_encode_n(self._h, b, len(b), context_length,
                                         out[i].ctypes.data_as(_i32p), ctypes.byref(err))
            if st != 0:
                err.message = ("text %d: " % i).encode() + err.message[:_capi.MC_ERROR_MESSAGE_MAX - 16]
                check(st, err)
        return out


_default_tokenizers = {}
_default_tok_lock = threading.Lock()


def tokenize(texts, context_length=77, vocab=None):
    """Token ids of ``texts`` (a str or a list of str): int32 ``[N, context_length]``.

    The vocabulary is ``vocab`` or found as :class:`Tokenizer` says; the
    tokenizer is loaded once and kept.  Every MobileCLIP model uses this one
    vocabulary; ``model.tokenize`` uses the model's own.
    """
    key = os.fspath(vocab) if vocab is not None else None
    with _default_tok_lock:
        tok = _default_tokenizers.get(key)
        if tok is None:
            tok = _default_tokenizers[key] = Tokenizer(vocab)
    return tok.encode(texts, context_length)


# ---------------------------------------------------------------- images

def _is_pil(x):
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in type(x).__mro__)


def _is_image_item(x):
    return isinstance(x, (str, bytes, bytearray, memoryview, os.PathLike, np.ndarray)) or _is_pil(x)


def _rgb_array(a, what):
    """a uint8 [H, W, 3] array, C-contiguous (copied when it is not)."""
    if a.dtype != np.uint8:
        raise TypeError("%s: an image array must be uint8 [H, W, 3] RGB (got dtype %s); "
                        "preprocessed pixels are float32 [3, S, S]" % (what, a.dtype))
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError("%s: an image array must be uint8 [H, W, 3] RGB, got shape %s" % (what, a.shape))
    if a.shape[0] > 2**31 - 1 or a.shape[1] > 2**31 - 1:
        raise ValueError("%s: image too large: %s" % (what, a.shape))
    return np.ascontiguousarray(a)


class _Item:
    """One image of an input list: kind is 'path', 'bytes', 'rgb' or 'pixels'."""
    __slots__ = ("kind", "value", "what")

    def __init__(self, kind, value, what):
        self.kind, self.value, self.what = kind, value, what


def _items(images, size):
    """Flattens encode_image / preprocess input into _Items; single says
    whether one image (not a list) was given."""
    single = _is_image_item(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        single = False
        seq = [images[i] for i in range(images.shape[0])]
    elif single:
        seq = [images]
    else:
        try:
            seq = list(images)
        except TypeError:
            raise TypeError("expected an image (path, bytes, uint8 [H, W, 3] array, PIL image, "
                            "float32 [3, S, S] pixels) or a sequence of them, got %s"
                            % type(images).__name__) from None
    out = []
    for i, x in enumerate(seq):
        what = "image %d" % i
        if isinstance(x, (str, os.PathLike)):
            out.append(_Item("path", _capi.fspath_bytes(x), "%s (%s)" % (what, os.fspath(x))))
        elif isinstance(x, (bytes, bytearray, memoryview)):
            b = bytes(x)
            if not b:
                raise ValueError("%s: empty bytes (expected an encoded JPEG, PNG or WebP file)" % what)
            out.append(_Item("bytes", b, what))
        elif _is_pil(x):
            out.append(_Item("rgb", np.ascontiguousarray(np.asarray(x.convert("RGB"), dtype=np.uint8)), what))
        elif isinstance(x, np.ndarray):
            if x.dtype.kind == "f":
                if x.dtype != np.float32:
                    raise TypeError("%s: got a %s array of shape %s; expected a uint8 [H, W, 3] RGB image "
                                    "or float32 [3, %d, %d] preprocessed pixels"
                                    % (what, x.dtype, x.shape, size, size))
                if x.shape != (3, size, size):
                    raise ValueError("%s: preprocessed pixels must be float32 [3, %d, %d] for this model, "
                                     "got shape %s" % (what, size, size, x.shape))
                out.append(_Item("pixels", x, what))
            else:
                out.append(_Item("rgb", _rgb_array(x, what), what))
        else:
            raise TypeError("%s: expected a path, bytes, a uint8 [H, W, 3] array, a PIL image or "
                            "float32 [3, S, S] pixels, got %s" % (what, type(x).__name__))
    return out, single


def _preprocess_into(item, pp, out):
    """Writes item's float32 [3, S, S] pixels into out (a C-contiguous view)."""
    L = _capi.lib()
    err = _new_err()
    if item.kind == "pixels":
        out[...] = item.value
        return
    if item.kind == "path":
        st = L.mc_image_preprocess_file(item.value, ctypes.byref(pp), _fptr(out), ctypes.byref(err))
        check(st, err)   # the library's message names the file
        return
    img = _capi.mc_image()
    own = False
    try:
        if item.kind == "bytes":
            buf = ctypes.create_string_buffer(item.value, len(item.value))
            st = L.mc_image_load_memory(buf, len(item.value), pp.apply_exif, ctypes.byref(img), ctypes.byref(err))
            _prefixed(st, err, item.what)
            own = True
        else:
            a = item.value
            img.width, img.height = a.shape[1], a.shape[0]
            img.rgb = a.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        res = _capi.mc_image()
        st = L.mc_image_resize_crop(ctypes.byref(img), pp.size, pp.interp, pp.resize_mode, ctypes.byref(res),
                                    ctypes.byref(err))
        _prefixed(st, err, item.what)
        try:
            L.mc_image_to_tensor(ctypes.byref(res), pp.mean, pp.std, _fptr(out))
        finally:
            L.mc_image_free(ctypes.byref(res))
    finally:
        if own:
            L.mc_image_free(ctypes.byref(img))


def _prefixed(st, err, what):
    if st != 0:
        msg = err.message.decode("utf-8", "replace")
        err.message = ("%s: %s" % (what, msg)).encode("utf-8")[:_capi.MC_ERROR_MESSAGE_MAX - 1]
        check(st, err)


class PreprocessParams:
    """How a model's images are prepared (mc_preprocess_params): ``size``
    (output side), ``interp`` ("bilinear" or "bicubic"), ``resize_mode``
    ("shortest": short side to size then centre crop; "squash"), ``mean``
    and ``std`` (3 floats each) and ``apply_exif`` (honour the EXIF
    orientation of files and bytes)."""

    def __init__(self, c):
        self.size = c.size
        self.interp = _capi.INTERP.get(c.interp, c.interp)
        self.resize_mode = _capi.RESIZE_MODE.get(c.resize_mode, c.resize_mode)
        self.mean = tuple(float(v) for v in c.mean)
        self.std = tuple(float(v) for v in c.std)
        self.apply_exif = bool(c.apply_exif)

    def __repr__(self):
        return ("PreprocessParams(size=%d, interp=%r, resize_mode=%r, mean=%r, std=%r, apply_exif=%r)"
                % (self.size, self.interp, self.resize_mode, self.mean, self.std, self.apply_exif))


class ModelInfo:
    """What a loaded model is (mc_model_info): ``family`` ("mobileclip" or
    "open_clip"), ``image_arch``, ``text_arch``, ``format`` ("torch_zip" or
    "safetensors"), ``image_size``, ``embed_dim``, ``context_length``,
    ``n_tensors``, ``n_params``, ``n_params_image``, ``n_params_text``,
    ``preprocess`` (:class:`PreprocessParams`) and ``logit_scale`` (the exp
    of the stored parameter)."""

    def __init__(self, c):
        def s(v):
            return v.decode() if v is not None else None
        self.family = s(c.family)
        self.image_arch = s(c.image_arch)
        self.text_arch = s(c.text_arch)
        self.format = _capi.FILE_FORMAT.get(c.format, c.format)
        self.image_size = c.image_size
        self.embed_dim = c.embed_dim
        self.context_length = c.context_length
        self.n_tensors = c.n_tensors
        self.n_params = c.n_params
        self.n_params_image = c.n_params_image
        self.n_params_text = c.n_params_text
        self.preprocess = PreprocessParams(c.preprocess)
        self.logit_scale = float(c.logit_scale)

    def __repr__(self):
        return "ModelInfo(%s)" % ", ".join("%s=%r" % kv for kv in vars(self).items())


# ---------------------------------------------------------------- models

class _Handle:
    """Owns an mc_model; freed when the Model and every context made from it are gone."""

    def __init__(self, ptr):
        self.ptr = ptr
        self._fin = weakref.finalize(self, _capi.lib().mc_model_free, ptr)


class _Context:
    """Owns an mc_context of one thread; keeps its model alive."""

    def __init__(self, handle, n_threads, max_batch):
        L = _capi.lib()
        cp = L.mc_context_default_params()
        cp.n_threads = n_threads
        cp.max_batch = max(1, max_batch)
        ptr = ctypes.c_void_p()
        err = _new_err()
        check(L.mc_context_new(handle.ptr, ctypes.byref(cp), ctypes.byref(ptr), ctypes.byref(err)), err)
        self.handle = handle
        self.ptr = ptr
        self._fin = weakref.finalize(self, L.mc_context_free, ptr)

    def fail(self, status):
        """Raises the context's last error (mc_context_last_error)."""
        err = _new_err()
        ctypes.memmove(ctypes.byref(err), _capi.lib().mc_context_last_error(self.ptr), ctypes.sizeof(err))
        check(status, err)


def load(model, weights="f32", *, config=None, vocab=None, image=True, text=True, threads=0,
         download=None):
    """Loads a model and returns a :class:`Model`.

    model: a checkpoint file (.pt, .pth, .bin, .safetensors), a folder that
        holds one (with its config.json / open_clip_config.json), or an
        official name (``list_models()``: "mobileclip_s0", "MobileCLIP2-S0",
        ...), taken from the cache ($MOBILECLIP_CACHE, else
        ~/.cache/mobileclip) and downloaded into it when missing.
    weights: how the large weight matrices are held: "f32" (default, results
        as the reference), "bf16", "f16" (half the memory) or "int8" (a
        quarter); compute stays float32.
    config: the model config when it is not beside the checkpoint.
    vocab: the tokenizer vocabulary (bpe_simple_vocab_16e6.txt.gz) when it is
        not found beside the model, in $MOBILECLIP_VOCAB or the share folder.
    image, text: load the image / text tower (both by default).
    threads: compute threads of each thread's context (0: one per core).  Give
        each of K Python threads that encode at once about cores/K.
    download: allow downloading an official model (default: yes unless
        $MOBILECLIP_OFFLINE is set to something other than 0).

    Raises :class:`Error` (status and the library's message) when the model
    cannot be found or loaded.
    """
    if weights not in _capi.WEIGHT_DTYPES:
        raise ValueError("weights must be one of %s, got %r" % (", ".join(_capi.WEIGHT_DTYPES), weights))
    if not isinstance(threads, int) or threads < 0:
        raise ValueError("threads must be an integer >= 0, got %r" % (threads,))
    if not image and not text:
        raise ValueError("load at least one tower (image=True or text=True)")
    if download is None:
        off = os.environ.get("MOBILECLIP_OFFLINE", "")
        download = not (off and off != "0")
    L = _capi.lib()
    err = _new_err()
    model_b = _capi.fspath_bytes(model)
    path = ctypes.create_string_buffer(4096)
    name = ctypes.c_char_p()
    check(L.mc_model_resolve(model_b, 1 if download else 0, path, len(path), ctypes.byref(name),
                             ctypes.byref(err)), err)
    mp = L.mc_model_default_params()
    config_b = _capi.fspath_bytes(config) if config is not None else None   # alive through the call
    vocab_b = _capi.fspath_bytes(vocab) if vocab is not None else None
    mp.config_path = config_b
    mp.vocab_path = vocab_b
    mp.model_name = name.value
    mp.load_image_tower = 1 if image else 0
    mp.load_text_tower = 1 if text else 0
    mp.weight_dtype = _capi.WEIGHT_DTYPES[weights]
    ptr = ctypes.c_void_p()
    check(L.mc_model_load(path.value, ctypes.byref(mp), ctypes.byref(ptr), ctypes.byref(err)), err)
    return Model(_Handle(ptr), os.fsdecode(path.value), name.value.decode() if name.value else None,
                 image, text, threads)


class Model:
    """A loaded model (see :func:`load`).

    One Model may be used by any number of Python threads at once: each
    thread gets its own C context (scratch memory, planned per batch) the
    first time it encodes, and the library runs with the GIL released, so
    threads encode in parallel.  Contexts are freed when their threads end
    or at :meth:`close`.

    Attributes: ``info`` (:class:`ModelInfo`), ``path`` (the file or folder
    loaded), ``name`` (the official name, or None), ``embed_dim``,
    ``image_size``, ``context_length``, ``logit_scale``, ``tokenizer``.
    """

    def __init__(self, handle, path, name, image, text, threads):
        self._handle = handle
        self._threads = threads
        self._local = threading.local()
        self._has_image = bool(image)
        self._has_text = bool(text)
        L = _capi.lib()
        ci = _capi.mc_model_info()
        L.mc_model_get_info(handle.ptr, ctypes.byref(ci))
        self.info = ModelInfo(ci)
        self._pp = _capi.mc_preprocess_params.from_buffer_copy(ci.preprocess)
        self.path = path
        self.name = name
        self.embed_dim = self.info.embed_dim
        self.image_size = self.info.image_size
        self.context_length = self.info.context_length
        self.logit_scale = self.info.logit_scale
        tok = L.mc_model_tokenizer(handle.ptr)
        self.tokenizer = Tokenizer(_handle=ctypes.c_void_p(tok), _owner=handle) if tok else None

    @property
    def id(self):
        """The text that names the model's weights, "NAME dim=D sha256=HEX"
        (mc_model_id): what an :class:`Index` records of its model."""
        if self._handle is None:
            raise ValueError("the model is closed")
        buf = ctypes.create_string_buffer(1024)
        err = _new_err()
        check(_capi.lib().mc_model_id(self._handle.ptr, buf, len(buf), ctypes.byref(err)), err)
        return buf.value.decode("utf-8", "replace")

    def __repr__(self):
        return "<mobileclip_c.Model %s (%s, %s + %s, dim %d)%s>" % (
            self.name or self.path, self.info.family, self.info.image_arch, self.info.text_arch,
            self.embed_dim, " closed" if self._handle is None else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Frees the calling thread's context and drops the model; the C
        model is freed once no other thread's context holds it.  Later calls
        raise ValueError."""
        ctx = getattr(self._local, "ctx", None)
        self._local = threading.local()
        self._handle = None
        self.tokenizer = None
        if ctx is not None:
            ctx._fin()

    def _context(self, batch):
        handle = self._handle
        if handle is None:
            raise ValueError("the model is closed")
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = _Context(handle, self._threads, batch)
        return ctx

    # -- images

    def preprocess(self, images):
        """The model input for ``images``: float32 ``[3, S, S]`` for one image,
        ``[N, 3, S, S]`` for a list, as the reference's transform gives
        (decode as Pillow, resize the short side to S with Pillow's
        antialiased filter, centre crop, scale to [0, 1], mean/std).

        An image is a path (str or os.PathLike; JPEG, PNG, WebP; EXIF
        orientation applied), bytes of such a file, a uint8 ``[H, W, 3]`` RGB
        array (any strides; used as given, no EXIF), or a PIL image
        (converted to RGB; used as given).  A uint8 ``[N, H, W, 3]`` array is N
        images.
        """
        S = self.image_size
        items, single = _items(images, S)
        out = np.empty((len(items), 3, S, S), dtype=np.float32)
        for i, it in enumerate(items):
            _preprocess_into(it, self._pp, out[i])
        return out[0] if single else out

    def encode_image(self, images, normalize=True, batch_size=8, decode_threads=2):
        """Image embeddings: float32 ``[N, embed_dim]`` (N = 1 for one image).

        images: one image or a list, each as :meth:`preprocess` takes it, or
            already preprocessed float32 ``[3, S, S]`` pixels (``[N, 3, S, S]``
            for N).
        normalize: L2-normalise each row (default), else the raw projection.
        batch_size: images per forward pass.  A row's last bits can depend
            on the batch it is encoded in: the default is the CLI's, and the
            rows are bit for bit those of ``mobileclip embed-image -b
            batch_size`` on the same list.
        decode_threads: threads decoding and resizing the next batch while
            the current one is encoded, as the CLI does (1: decode each batch
            in the calling thread before encoding it).  Results do not depend
            on it.

        An image that cannot be read raises :class:`Error` naming it (the
        first such image of the list).
        """
        self._need("image")
        S = self.image_size
        items, _ = _items(images, S)
        n = len(items)
        out = np.empty((n, self.embed_dim), dtype=np.float32)
        if n == 0:
            return out
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be an integer >= 1, got %r" % (batch_size,))
        if not isinstance(decode_threads, int) or decode_threads < 1:
            raise ValueError("decode_threads must be an integer >= 1, got %r" % (decode_threads,))
        ctx = self._context(batch_size)
        L = _capi.lib()
        starts = list(range(0, n, batch_size))
        pool = None
        if decode_threads > 1 and n > 1:
            pool = concurrent.futures.ThreadPoolExecutor(min(decode_threads, n), "mobileclip_c-decode")
        bufs = [np.empty((min(batch_size, n), 3, S, S), dtype=np.float32) for _ in range(2 if pool else 1)]

        def start(b):   # batch b's decoding: running on the pool, or deferred to finish()
            buf = bufs[b % len(bufs)]
            jobs = [functools.partial(_preprocess_into, it, self._pp, buf[k])
                    for k, it in enumerate(items[starts[b]:starts[b] + batch_size])]
            return [pool.submit(j) for j in jobs] if pool else jobs

        def finish(pending):   # raises the first bad image's error, in list order
            for p in pending:
                p.result() if pool else p()

        try:
            pending = start(0)
            for b, first in enumerate(starts):
                finish(pending)
                if b + 1 < len(starts):
                    pending = start(b + 1)
                cnt = min(batch_size, n - first)
                st = L.mc_encode_image(ctx.ptr, _fptr(bufs[b % len(bufs)]), cnt, 1 if normalize else 0,
                                       _fptr(out[first:]))
                if st != 0:
                    ctx.fail(st)
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)
        return out

    # -- texts

    def tokenize(self, texts):
        """Token ids of ``texts`` with the model's tokenizer: int32 ``[N, context_length]``."""
        self._need("text")
        if self.tokenizer is None:
            raise ValueError("the model has no tokenizer (load(..., vocab=PATH))")
        return self.tokenizer.encode(texts, self.context_length)

    def encode_text(self, texts, normalize=True, batch_size=32):
        """Text embeddings: float32 ``[N, embed_dim]``.

        texts: a str, a list of str, or token ids (an integer array
            ``[N, context_length]`` or ``[context_length]``, as
            :meth:`tokenize` gives).
        normalize: L2-normalise each row (default).
        batch_size: texts per forward pass; as for :meth:`encode_image`, the
            rows are bit for bit those of ``mobileclip embed-text -b
            batch_size`` (default: the CLI's 32).
        """
        self._need("text")
        if isinstance(texts, np.ndarray) and texts.dtype.kind in "iu":
            ids = texts.reshape(1, -1) if texts.ndim == 1 else texts
            if ids.ndim != 2 or ids.shape[1] != self.context_length:
                raise ValueError("token ids must be [N, %d], got shape %s" % (self.context_length, texts.shape))
            if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
                raise ValueError("token ids out of range")
            ids = np.ascontiguousarray(ids, dtype=np.int32)
        elif isinstance(texts, np.ndarray) and texts.dtype.kind not in "UO":
            raise TypeError("texts: expected str, a list of str or integer token ids, got a %s array" % texts.dtype)
        else:
            ids = self.tokenize(texts)
        n = ids.shape[0]
        out = np.empty((n, self.embed_dim), dtype=np.float32)
        if n == 0:
            return out
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be an integer >= 1, got %r" % (batch_size,))
        ctx = self._context(batch_size)
        L = _capi.lib()
        for first in range(0, n, batch_size):
            cnt = min(batch_size, n - first)
            st = L.mc_encode_text(ctx.ptr, ids[first:].ctypes.data_as(_i32p), cnt, 1 if normalize else 0,
                                  _fptr(out[first:]))
            if st != 0:
                ctx.fail(st)
        return out

    # -- zero-shot

    def text_classifier(self, labels, templates=(DEFAULT_TEMPLATE,)):
        """Zero-shot class embeddings, float32 ``[len(labels), embed_dim]``: for
        each label the mean of its templates' L2-normalised embeddings (every
        "{}" or "{c}" in a template replaced by the label), L2-normalised
        again: the library's mc_zeroshot_classifiers, as ``mobileclip
        classify`` builds them."""
        labels, templates = _labels_templates(labels, templates)
        prompts = [t.replace("{}", lab).replace("{c}", lab) for lab in labels for t in templates]
        emb = np.ascontiguousarray(self.encode_text(prompts), dtype=np.float32)
        cls = np.empty((len(labels), self.embed_dim), dtype=np.float32)
        _capi.lib().mc_zeroshot_classifiers(emb.ctypes.data_as(_f32p), len(labels), len(templates),
                                            self.embed_dim, cls.ctypes.data_as(_f32p))
        return cls

    def classify(self, images, labels, templates=(DEFAULT_TEMPLATE,)):
        """Zero-shot classification: probabilities float32 ``[N, len(labels)]``
        (rows sum to 1), softmax(logit_scale * cosine) with logit_scale the
        model's (at most 100, as CLIP clamps it) over
        :meth:`text_classifier`.  ``labels[probs[i].argmax()]`` is image i's
        class.  images: as :meth:`encode_image` takes them."""
        cls = self.text_classifier(labels, templates)
        emb = np.ascontiguousarray(self.encode_image(images), dtype=np.float32)
        p = np.empty((emb.shape[0], len(labels)), dtype=np.float64)
        f = _capi.lib().mc_zeroshot_probs
        for i in range(emb.shape[0]):   # the library's mc_zeroshot_probs, as 'classify' computes them
            f(emb[i].ctypes.data_as(_f32p), cls.ctypes.data_as(_f32p), len(labels), self.embed_dim,
              float(self.logit_scale), p[i].ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        return p.astype(np.float32)

    def _need(self, tower):
        if self._handle is None:
            raise ValueError("the model is closed")
        if tower == "image" and not self._has_image:
            raise ValueError("the model was loaded without its image tower (load(..., image=True))")
        if tower == "text" and not self._has_text:
            raise ValueError("the model was loaded without its text tower (load(..., text=True))")


def _labels_templates(labels, templates):
    if isinstance(labels, str):
        raise TypeError("labels must be a list of str, not one str")
    labels = list(labels)
    if not labels or not all(isinstance(x, str) for x in labels):
        raise ValueError("labels must be a non-empty list of str")
    if isinstance(templates, str):
        templates = [templates]
    templates = list(templates)
    if not templates:
        raise ValueError("templates must hold at least one template")
    for t in templates:
        if not isinstance(t, str) or "{}" not in t:
            raise ValueError("template %r has no {} for the label" % (t,))
    return labels, templates


# ---------------------------------------------------------------- search

def search(queries, matrix, k=10):
    """Exact nearest neighbours by inner product (cosine for L2-normalised rows).

    queries: float ``[D]`` or ``[Q, D]``; matrix: float ``[N, D]`` (say,
    ``encode_image`` of a photo collection).  Returns ``(indices, scores)``:
    int64 and float32 ``[Q, k']`` (``[k']`` for one query), k' = min(k, N),
    best first; equal scores keep the lower index first.  Pure NumPy.
    """
    q = np.asarray(queries)
    m = np.asarray(matrix)
    if q.dtype.kind not in "fiu" or m.dtype.kind not in "fiu":
        raise TypeError("queries and matrix must be numeric arrays")
    if m.ndim != 2:
        raise ValueError("matrix must be [N, D], got shape %s" % (m.shape,))
    one = q.ndim == 1
    if one:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != m.shape[1]:
        raise ValueError("queries must be [D] or [Q, D] with D = %d, got shape %s" % (m.shape[1], np.shape(queries)))
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError("k must be an integer >= 1, got %r" % (k,))
    k = min(int(k), m.shape[0])
    scores = q.astype(np.float32, copy=False) @ m.astype(np.float32, copy=False).T
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)
    top = np.take_along_axis(scores, idx, axis=1).astype(np.float32)
    return (idx[0], top[0]) if one else (idx, top)


# ---------------------------------------------------------------- photo index

class IndexInfo:
    """What an :class:`Index` holds (mc_index_info): ``count`` (images with an
    embedding), ``dim`` (embedding width, 0 while empty), ``model_id`` (the
    model the embeddings came from, see :attr:`Model.id`) and ``model_path``
    (the checkpoint it was loaded from, "" when unknown)."""

    def __init__(self, c):
        self.count = c.count
        self.dim = c.dim
        self.model_id = c.model_id.decode("utf-8", "replace")
        self.model_path = os.fsdecode(c.model_path)

    def __repr__(self):
        return "IndexInfo(count=%d, dim=%d, model_id=%r, model_path=%r)" % (
            self.count, self.dim, self.model_id, self.model_path)


class Hit(tuple):
    """One search result: ``(path, score, id)``; also ``.path`` (absolute),
    ``.score`` (cosine) and ``.id`` (the image's id in the index)."""
    __slots__ = ()

    def __new__(cls, path, score, id):
        return tuple.__new__(cls, (path, score, id))

    path = property(lambda self: self[0])
    score = property(lambda self: self[1])
    id = property(lambda self: self[2])

    def __repr__(self):
        return "Hit(path=%r, score=%.6f, id=%d)" % self


class Index:
    """A photo index: one SQLite file of images and their embeddings, made by
    :meth:`update` or ``mobileclip index`` (docs/search.md).

    ``Index(db_path)`` opens an index read-only; ``writable=True`` opens it
    for :meth:`update` (``create=True``: make the file when missing).
    model: the :class:`Model` (or a path or name for :func:`load`) that
    encodes text and image queries; by default the one the index records
    (``info.model_path``), loaded on the first such query.  Its
    :attr:`Model.id` must be the index's ``model_id``.
    weights, threads: passed to :func:`load` when the index loads its model.

    Searches may run from several threads at once.
    """

    def __init__(self, db_path, model=None, *, writable=False, create=False, weights="f32", threads=0):
        L = _capi.lib()
        p = L.mc_index_default_params()
        p.readonly = 0 if writable else 1
        p.create = 1 if create else 0
        if create and not writable:
            raise ValueError("create=True needs writable=True")
        ptr = ctypes.c_void_p()
        err = _new_err()
        check(L.mc_index_open(_capi.fspath_bytes(db_path), ctypes.byref(p), ctypes.byref(ptr), ctypes.byref(err)),
              err)
        self._ptr = ptr
        self._fin = weakref.finalize(self, L.mc_index_close, ptr)
        self.path = os.fspath(db_path)
        self._model = model
        self._load_kw = {"weights": weights, "threads": threads}
        self._model_lock = threading.Lock()

    def __repr__(self):
        return "<mobileclip_c.Index %s%s>" % (self.path, " closed" if self._ptr is None else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the index (no search may be running)."""
        if self._ptr is not None:
            self._ptr = None
            self._fin()

    def _h(self):
        if self._ptr is None:
            raise ValueError("the index is closed")
        return self._ptr

    @property
    def info(self):
        """:class:`IndexInfo`, read now."""
        c = _capi.mc_index_info()
        err = _new_err()
        check(_capi.lib().mc_index_get_info(self._h(), ctypes.byref(c), ctypes.byref(err)), err)
        return IndexInfo(c)

    def __len__(self):
        return self.info.count

    @property
    def model(self):
        """The query model (loaded now when needed); see the class doc."""
        with self._model_lock:
            m = self._model
            info = self.info
            if not isinstance(m, Model):
                if m is None:
                    if not info.model_path:
                        raise ValueError("%s: the index does not say where its model is (%s); give "
                                         "Index(..., model=...)" % (self.path, info.model_id or "empty"))
                    m = info.model_path
                m = load(m, **self._load_kw)
            if info.model_id and m.id != info.model_id:
                raise ValueError("%s: the index was made with model '%s', the query model is '%s'"
                                 % (self.path, info.model_id, m.id))
            self._model = m
            return m

    def search(self, query, k=10):
        """The ``k`` images closest to ``query``, best first: a list of :class:`Hit`.

        query: a str (a text, encoded by :attr:`model`); an image that is
            not a str (a ``pathlib.Path``, file bytes, a uint8 ``[H, W, 3]``
            array, a PIL image; encoded by :attr:`model`); or an embedding,
            a float ``[dim]`` array, L2-normalised (as ``encode_*`` give).
        Scores are cosines; equal scores keep the lower id first.
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError("k must be an integer >= 1, got %r" % (k,))
        if isinstance(query, str):
            q = self.model.encode_text([query], batch_size=1)[0]
        elif isinstance(query, np.ndarray) and query.dtype.kind == "f" and query.ndim == 1:
            q = np.ascontiguousarray(query, dtype=np.float32)
        else:
            if not _is_image_item(query) or (isinstance(query, np.ndarray) and query.ndim == 4):
                raise TypeError("query: a text (str), one image or a float [dim] embedding, got %s"
                                % type(query).__name__)
            q = self.model.encode_image(query, batch_size=1)[0]
        k = int(k)
        hits = (_capi.mc_search_hit * k)()
        n = ctypes.c_int()
        err = _new_err()
        L = _capi.lib()
        h = self._h()
        check(L.mc_index_search(h, _fptr(q), q.shape[0], k, hits, ctypes.byref(n), ctypes.byref(err)), err)
        return [Hit(self._path_of(h, hits[i].id), float(hits[i].score), int(hits[i].id)) for i in range(n.value)]

    def _path_of(self, h, image_id):
        buf = ctypes.create_string_buffer(4096)
        err = _new_err()
        check(_capi.lib().mc_index_get_path(h, image_id, buf, len(buf), ctypes.byref(err)), err)
        return os.fsdecode(buf.value)

    def image(self, image_id):
        """The stored record of an image: a dict of ``id``, ``path``, ``width``,
        ``height`` (after the EXIF orientation), ``size`` (bytes) and
        ``mtime_ns``.  An unknown id raises :class:`Error` (NOT_FOUND)."""
        c = _capi.mc_index_image()
        err = _new_err()
        check(_capi.lib().mc_index_get_image(self._h(), int(image_id), ctypes.byref(c), ctypes.byref(err)), err)
        return {"id": c.id, "path": os.fsdecode(c.path), "width": c.width, "height": c.height, "size": c.size,
                "mtime_ns": c.mtime_ns}

    def embedding(self, image_id):
        """The stored embedding of an image: float32 ``[dim]``."""
        out = np.empty(self.info.dim, dtype=np.float32)
        err = _new_err()
        check(_capi.lib().mc_index_get_embedding(self._h(), int(image_id), _fptr(out), out.shape[0],
                                                 ctypes.byref(err)), err)
        return out

    def reload(self):
        """Re-reads the index after another process changed it."""
        err = _new_err()
        check(_capi.lib().mc_index_reload(self._h(), ctypes.byref(err)), err)

    def update(self, folders, model=None, *, batch=16, workers=1, threads=0, decode_threads=2, reembed=False,
               progress=None):
        """Indexes the images under ``folders`` (a path or a list; recursive;
        .jpg .jpeg .jpe .png .webp) incrementally, as ``mobileclip index``
        does: new and changed images are embedded, vanished ones forgotten,
        one transaction per batch (an interrupted run keeps what it
        committed).  The index must be open with ``writable=True``.

        model: the image model (default: :attr:`model`); an index made with
            another model is refused unless ``reembed``.
        progress: called as ``progress(done, total)`` after each batch.
        Returns a dict: ``found``, ``added``, ``updated``, ``removed``,
        ``unchanged``, ``skipped``, ``seconds`` and ``skipped_files`` (a list
        of ``(path, reason, message)``, reason "unreadable" or
        "undecodable").
        """
        if isinstance(folders, (str, bytes, os.PathLike)):
            folders = [folders]
        dirs = [_capi.fspath_bytes(d) for d in folders]
        if not dirs:
            raise ValueError("no folders to index")
        if model is None:
            model = self._model if isinstance(self._model, Model) else None
        if model is None:
            info = self.info
            model = self.model if info.model_id else None
        if model is None:
            raise ValueError("%s: an empty index needs a model: update(folders, model=...)" % self.path)
        if not isinstance(model, Model):
            model = load(model, **self._load_kw)
        model._need("image")
        L = _capi.lib()
        p = L.mc_index_update_default_params()
        p.batch, p.workers, p.threads, p.decode_threads = batch, workers, threads, decode_threads
        p.reembed = 1 if reembed else 0
        skipped = []

        def on_skip(user, path, reason, message):
            r = _capi.INDEX_SKIP_REASONS[reason] if 0 <= reason < len(_capi.INDEX_SKIP_REASONS) else reason
            skipped.append((os.fsdecode(path), r, message.decode("utf-8", "replace") if message else ""))

        def on_progress(user, done, total):
            try:
                progress(done, total)
            except Exception:   # a callback cannot raise through C; report it after the call
                failures.append(sys.exc_info())

        failures = []
        skip_cb = _capi.mc_index_skip_fn(on_skip)
        prog_cb = _capi.mc_index_progress_fn(on_progress) if progress else _capi.mc_index_progress_fn()
        p.on_skip = skip_cb
        p.progress = prog_cb
        arr = (ctypes.c_char_p * len(dirs))(*dirs)
        stats = _capi.mc_index_update_stats()
        err = _new_err()
        st = L.mc_index_update(self._h(), model._handle.ptr, arr, len(dirs), ctypes.byref(p), ctypes.byref(stats),
                               ctypes.byref(err))
        check(st, err)
        if failures:
            raise failures[0][1].with_traceback(failures[0][2])
        if self._model is None:
            self._model = model
        return {"found": stats.found, "added": stats.added, "updated": stats.updated, "removed": stats.removed,
                "unchanged": stats.unchanged, "skipped": stats.skipped, "seconds": stats.seconds,
                "skipped_files": skipped}

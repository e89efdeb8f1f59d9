/* procshare._core: the native core.  Types and functions that touch memory
 * inside shared segments; everything else lives in Python. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cell.h"
#include "codec.h"
#include "generation.h"
#include "loaded.h"
#include "mapping.h"
#include "mutex.h"
#include "platform.h"
#include "ring.h"
#include "roots.h"
#include "semaphore.h"
#include "slots.h"
#include "table.h"
#include "vector.h"
#include "wait.h"

static PyObject *itemsize_py(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *tc = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (tc == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "typecode must be a str, not %.100s",
                         Py_TYPE(arg)->tp_name);
        return NULL;
    }
    Py_ssize_t n = ps_typecode_size(tc);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *pid_alive_py(PyObject *module, PyObject *arg)
{
    (void)module;
    unsigned long pid = PyLong_AsUnsignedLong(arg);
    if (pid == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(pid <= UINT32_MAX && ps_pid_alive((uint32_t)pid));
}

/* untrack(obj): take obj out of the cycle collector's lists.  For objects that
 * can never be part of a cycle (an arena object's slots hold its arena, an index
 * and an epoch): a million of them alive otherwise cost every full collection a
 * pass over each. */
static PyObject *untrack_py(PyObject *module, PyObject *obj)
{
    (void)module;
    if (PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj))
        PyObject_GC_UnTrack(obj);
    Py_RETURN_NONE;
}

/* Whether each class of shared objects is procshare's own (untrack_ours). */
static PyObject *ours_by_class;

/* untrack_ours(obj): untrack(obj) when obj's class is procshare's own (its
 * module is in the procshare package), decided once per class.  procshare's
 * handles hold their place (segment, slot, lock, table) and nothing that leads
 * back to them; a user's subclass might hold a cycle, and stays visited. */
int ps_untrack_ours(PyObject *obj)
{
    PyObject *cls = (PyObject *)Py_TYPE(obj);
    PyObject *ours = PyDict_GetItemWithError(ours_by_class, cls);
    if (ours == NULL) {
        if (PyErr_Occurred())
            return -1;
        PyObject *name = PyObject_GetAttrString(cls, "__module__");
        if (name == NULL)
            return -1;
        PyObject *prefix = PyUnicode_FromString("procshare.");
        Py_ssize_t own = prefix == NULL || !PyUnicode_Check(name)
                             ? 0
                             : PyUnicode_Tailmatch(name, prefix, 0, PY_SSIZE_T_MAX, -1);
        Py_XDECREF(prefix);
        Py_DECREF(name);
        if (own < 0 || PyErr_Occurred())
            return -1;
        ours = own ? Py_True : Py_False;
        if (PyDict_SetItem(ours_by_class, cls, ours) < 0)
            return -1;
    }
    if (ours == Py_True && PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj))
        PyObject_GC_UnTrack(obj);
    return 0;
}

static PyObject *untrack_ours_py(PyObject *module, PyObject *obj)
{
    (void)module;
    return ps_untrack_ours(obj) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef module_methods[] = {
    {"shm_open", (PyCFunction)(void (*)(void))ps_shm_open_py, METH_FASTCALL,
     "shm_open(name, create, mode) -> fd: open or exclusively create a shared-memory object."},
    {"shm_unlink", (PyCFunction)ps_shm_unlink_py, METH_O, "shm_unlink(name): remove the name."},
    {"itemsize", (PyCFunction)itemsize_py, METH_O, "itemsize(typecode) -> bytes per element."},
    {"decode_value", (PyCFunction)(void (*)(void))ps_decode_value_py, METH_FASTCALL,
     "decode_value(tag, data) -> the value a Dict or List stored as (tag, data)."},
    {"set_handles", (PyCFunction)(void (*)(void))ps_set_handles_py, METH_FASTCALL,
     "set_handles(shared, recorded, rebuild): store instances of shared as handles, not "
     "pickles: recorded(cls) -> (kind number or 0, plain), rebuild(kind, name, mode) -> obj."},
    {"encode_value", (PyCFunction)ps_encode_value_py, METH_O,
     "encode_value(value) -> (tag, data): bytes, str and 64-bit ints as they are, else pickled."},
    {"encode_item", (PyCFunction)(void (*)(void))ps_encode_item_py, METH_FASTCALL,
     "encode_item(key, value) -> (canonical key, key pickle or b'', value tag, value bytes)."},
    {"redis_encode", (PyCFunction)ps_redis_encode_py, METH_O,
     "redis_encode(values) -> [bytes]: values as the Redis back end stores them."},
    {"redis_decode", (PyCFunction)ps_redis_decode_py, METH_O,
     "redis_decode(raws) -> [values]: what redis_encode stored."},
    {"pack", (PyCFunction)(void (*)(void))ps_pack_py, METH_FASTCALL,
     "pack(values, encoded) -> (count, packed): List elements as heap records, in one call."},
    {"canonical", (PyCFunction)ps_canonical_py, METH_O,
     "canonical(key) -> bytes equal for keys that are equal in a dict, in every process."},
    {"new_source", (PyCFunction)ps_new_source_py, METH_NOARGS,
     "new_source() -> a fresh serial naming one source of loaded values."},
    {"loaded", (PyCFunction)(void (*)(void))ps_loaded_py, METH_FASTCALL,
     "loaded(x, source) -> x as a LoadedInt or LoadedFloat read from source (else x)."},
    {"pending_addend", (PyCFunction)(void (*)(void))ps_pending_addend_py, METH_FASTCALL,
     "pending_addend(x, source) -> the addend when x is a pending change of source, else None."},
    {"pid_alive", (PyCFunction)pid_alive_py, METH_O,
     "pid_alive(pid) -> bool: the process exists and is not a zombie."},
    {"untrack", (PyCFunction)untrack_py, METH_O,
     "untrack(obj): the cycle collector no longer visits obj (it must be in no cycle)."},
    {"forking", (PyCFunction)ps_forking_py, METH_NOARGS,
     "forking(): count a fork, called just before it (objects made before it may be shared)."},
    {"fork_epoch", (PyCFunction)ps_fork_epoch_py, METH_NOARGS,
     "fork_epoch() -> int: the forks counted so far."},
    {"slot_name", (PyCFunction)(void (*)(void))ps_slot_name_py, METH_FASTCALL,
     "slot_name(arena, index, generation) -> '<arena>@<index>.<generation>'."},
    {"take", (PyCFunction)ps_take_py, METH_O,
     "take(free) -> (slots, index) or None: the last free slot of the list, removed, claimed."},
    {"hold_roots", (PyCFunction)(void (*)(void))ps_hold_roots_py, METH_FASTCALL,
     "hold_roots(held, pools, drop): the roots this process holds, its pools of slots, and "
     "drop(place), which removes an unlinked new root's tables."},
    {"root_in_slot", (PyCFunction)(void (*)(void))ps_root_in_slot_py, METH_FASTCALL,
     "root_in_slot(cls, slots, index, init) -> a new cls in that claimed slot, its first table "
     "written by init(mapping, offset)."},
    {"leave_new", (PyCFunction)(void (*)(void))ps_leave_new_py, METH_FASTCALL,
     "leave_new(place, pid, user) -> bool: pid lets go of the new root at place; whether its "
     "name was unlinked."},
    {"token_number", (PyCFunction)ps_token_number_py, METH_NOARGS,
     "token_number() -> int: a fresh, unpredictable 64-bit token."},
    {"untrack_ours", (PyCFunction)untrack_ours_py, METH_O,
     "untrack_ours(obj): untrack(obj) if its class is procshare's own, not a user's subclass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "procshare._core",
    .m_doc = "Native core of procshare: atomics, futex wait/wake and lock words in shared memory.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__core(void)
{
    if (ps_generation_init() < 0 ||
        (ours_by_class == NULL && (ours_by_class = PyDict_New()) == NULL))
        return NULL;
    if (ps_platform_init() != 0) {
        PyErr_SetString(PyExc_OSError, "procshare: platform initialisation failed");
        return NULL;
    }
    PyTypeObject *types[] = {&ps_MappingType,    &ps_CellType,        &ps_CellArrayType,
                             &ps_MutexType,      &ps_SemaphoreType,   &ps_RingType,
                             &ps_TableType,      &ps_VectorType,      &ps_WaitingType,
                             &ps_GenerationType, &ps_DictOpsType,     &ps_ListOpsType,
                             &ps_LoadedIntType,  &ps_LoadedFloatType, &ps_SlotsType};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0)
            return NULL;
    if (PyType_Ready(&ps_ListIterType) < 0) /* made by ListOps, not by name */
        return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL)
        return NULL;
    const char *names[] = {"Mapping", "Cell",    "CellArray", "Mutex",       "Semaphore",
                           "Ring",    "Table",   "Vector",    "Waiting",     "Generation",
                           "DictOps", "ListOps", "LoadedInt", "LoadedFloat", "Slots"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            Py_DECREF(m);
            return NULL;
        }
    }
    if (PyModule_AddIntConstant(m, "MUTEX_SIZE", PS_MUTEX_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "LOCK_SPACE", PS_LOCK_SPACE) < 0 ||
        PyModule_AddIntConstant(m, "PROBE_NS", PS_PROBE_NS) < 0 ||
        PyModule_AddIntConstant(m, "SEMAPHORE_SIZE", PS_SEMAPHORE_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "SEMAPHORE_MAX", PS_SEMAPHORE_MAX) < 0 ||
        PyModule_AddIntConstant(m, "RING_HEADER", PS_RING_HEADER) < 0 ||
        PyModule_AddIntConstant(m, "RING_SHARD", PS_RING_SHARD) < 0 ||
        PyModule_AddIntConstant(m, "RING_MAX_SHARDS", PS_RING_MAX_SHARDS) < 0 ||
        PyModule_AddIntConstant(m, "TABLE_HEADER", PS_TABLE_HEADER) < 0 ||
        PyModule_AddIntConstant(m, "VECTOR_HEADER", PS_VECTOR_HEADER) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_ESCAPED", PS_FLAG_ESCAPED) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_UNLINKED", PS_FLAG_UNLINKED) < 0 ||
        PyModule_AddIntConstant(m, "SLOT_HEADER", PS_SLOT_HEADER) < 0 ||
        PyModule_AddIntConstant(m, "ROOT_GEN", PS_ROOT_GEN) < 0 ||
        PyModule_AddIntConstant(m, "ROOT_OVERFLOW", PS_ROOT_OVERFLOW) < 0 ||
        PyModule_AddIntConstant(m, "ROOT_USERS", PS_ROOT_USERS) < 0 ||
        PyModule_AddIntConstant(m, "SLOT_USERS", PS_SLOT_USERS) < 0 ||
        PyModule_AddIntConstant(m, "ROOT_TOKEN", PS_ROOT_TOKEN) < 0 ||
        PyModule_AddIntConstant(m, "ROOT_INLINE", PS_ROOT_INLINE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

// SPDX-License-Identifier: MIT
// A pybind11 extension as C++ extensions are written, with no pymemtrace in its source: objects
// holding vectors, objects leaked with `new`, std::strings whose buffers libstdc++ allocates and
// grows. tests/redirect/test_cxx_heap.py traces it built with the redirect flags alone.
#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

struct Grid {
    std::vector<double> cells;
    explicit Grid(std::size_t count) : cells(count) {}
};

// Strings kept by the module: their buffers are made and grown by libstdc++'s own code.
struct Names {
    std::vector<std::string> held;
};

std::vector<std::unique_ptr<Grid>> kept_grids;
Names *names = nullptr;

// A call of two arguments that allocates nothing itself: what pybind11 allocates for a call.
void nothing(std::size_t, std::size_t) {}

void keep_grid(std::size_t count) { kept_grids.push_back(std::make_unique<Grid>(count)); }

void drop_grids() { kept_grids.clear(); }

// The last vector leak_vector() made: kept where the optimiser must store it, or it may drop the
// new-expression altogether (C++20 builds did).
std::vector<double> *volatile last_leaked = nullptr;

// A vector made with `new` and never deleted.
std::size_t leak_vector(std::size_t count)
{
    last_leaked = new std::vector<double>(count);
    return last_leaked->size();
}

// Over-aligned and nothrow forms of new, kept: operator new(size_t, align_val_t),
// new[](size_t, align_val_t), new[](size_t, nothrow_t).
struct alignas(64) Aligned {
    double values[8];
};
Aligned *volatile kept_aligned = nullptr;
Aligned *volatile kept_aligned_array = nullptr;
int *volatile kept_nothrow_array = nullptr;

void keep_other_forms()
{
    kept_aligned = new Aligned();
    kept_aligned_array = new Aligned[2]();
    kept_nothrow_array = new (std::nothrow) int[10]();
}

void churn(std::size_t times, std::size_t count)
{
    for (std::size_t i = 0; i < times; ++i) {
        auto grid = std::make_unique<Grid>(count);
        auto *array = new int[count];
        array[0] = static_cast<int>(grid->cells.size());
        delete[] array;
    }
}

void keep_name(const std::string &text, std::size_t grow_by)
{
    std::string name(text);            // buffer from libstdc++ (_M_create)
    name.reserve(text.size() + grow_by); // reallocated inside libstdc++
    names->held.push_back(std::move(name));
}

} // namespace

PYBIND11_MODULE(pybext, module)
{
    // Room reserved at import, so that a call in the workload allocates only what it keeps.
    kept_grids.reserve(64);
    names = new Names();
    names->held.reserve(64);
    module.attr("GRID_SIZE") = sizeof(Grid);
    module.attr("VECTOR_SIZE") = sizeof(std::vector<double>);
    // pybind11 registers each instance in an unordered_multimap<const void *, instance *>: one
    // node a live instance (libstdc++'s node, no cached hash for a pointer key).
    module.attr("INSTANCE_NODE_SIZE") = sizeof(
        std::__detail::_Hash_node<std::pair<const void *const, py::detail::instance *>, false>);
    py::class_<Grid>(module, "Grid")
        .def(py::init<std::size_t>())
        .def("size", [](const Grid &grid) { return grid.cells.size(); });
    module.def("nothing", &nothing);
    module.def("keep_grid", &keep_grid);
    module.def("drop_grids", &drop_grids);
    module.def("leak_vector", &leak_vector);
    module.def("churn", &churn);
    module.def("keep_other_forms", &keep_other_forms);
    module.def("keep_name", &keep_name);
}

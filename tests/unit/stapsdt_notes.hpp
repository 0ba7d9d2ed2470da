// SPDX-License-Identifier: MIT
// Reads the USDT probe notes (.note.stapsdt) of an ELF file, as a tracer would, without one.
#ifndef PYMEMTRACE_TESTS_STAPSDT_NOTES_HPP
#define PYMEMTRACE_TESTS_STAPSDT_NOTES_HPP

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace stapsdt {

struct Probe {
    std::string provider;
    std::string name;
    std::uint64_t pc = 0;
    std::uint64_t semaphore = 0;
    std::vector<std::string> arguments; // e.g. "8@%rdi", "-4@%edx"
};

struct Section {
    std::string name;
    std::uint64_t address = 0;
    std::uint64_t size = 0;
    bool contains(std::uint64_t a) const { return a >= address && a < address + size; }
};

struct Elf {
    std::vector<Probe> probes;
    std::vector<Section> sections;
    std::vector<unsigned char> bytes;

    const Section *section(const std::string &wanted) const
    {
        for (const auto &s : sections)
            if (s.name == wanted)
                return &s;
        return nullptr;
    }
    std::vector<Probe> probes_of(const std::string &provider) const
    {
        std::vector<Probe> found;
        for (const auto &p : probes)
            if (p.provider == provider)
                found.push_back(p);
        return found;
    }
};

inline std::vector<std::string> split_arguments(const std::string &spec)
{
    std::istringstream in(spec);
    return {std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
}

inline Elf read(const std::string &path)
{
    std::ifstream file(path, std::ios::binary);
    if (!file)
        throw std::runtime_error("cannot open " + path);
    Elf elf;
    elf.bytes.assign(std::istreambuf_iterator<char>(file), {});
    const auto &bytes = elf.bytes;
    if (bytes.size() < sizeof(Elf64_Ehdr) || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0)
        throw std::runtime_error(path + " is not an ELF file");
    Elf64_Ehdr header;
    std::memcpy(&header, bytes.data(), sizeof header);
    std::vector<Elf64_Shdr> headers(header.e_shnum);
    std::memcpy(headers.data(), bytes.data() + header.e_shoff, header.e_shnum * sizeof(Elf64_Shdr));
    const char *names = reinterpret_cast<const char *>(bytes.data() + headers[header.e_shstrndx].sh_offset);

    for (const auto &sh : headers) {
        elf.sections.push_back({names + sh.sh_name, sh.sh_addr, sh.sh_size});
        if (sh.sh_type != SHT_NOTE || std::strcmp(names + sh.sh_name, ".note.stapsdt") != 0)
            continue;
        std::size_t at = sh.sh_offset, end = sh.sh_offset + sh.sh_size;
        auto align4 = [](std::size_t n) { return (n + 3) & ~std::size_t(3); };
        while (at + sizeof(Elf64_Nhdr) <= end) {
            Elf64_Nhdr note;
            std::memcpy(&note, bytes.data() + at, sizeof note);
            const std::size_t name_at = at + sizeof note;
            const std::size_t desc_at = name_at + align4(note.n_namesz);
            at = desc_at + align4(note.n_descsz);
            if (note.n_type != 3 || std::strcmp(reinterpret_cast<const char *>(bytes.data() + name_at), "stapsdt") != 0)
                continue;
            Probe probe;
            const unsigned char *desc = bytes.data() + desc_at;
            std::memcpy(&probe.pc, desc, 8);
            std::memcpy(&probe.semaphore, desc + 16, 8);
            const char *text = reinterpret_cast<const char *>(desc + 24);
            probe.provider = text;
            text += probe.provider.size() + 1;
            probe.name = text;
            text += probe.name.size() + 1;
            probe.arguments = split_arguments(text);
            elf.probes.push_back(probe);
        }
    }
    return elf;
}

} // namespace stapsdt

#endif

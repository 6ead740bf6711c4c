// SPDX-License-Identifier: MIT
// Translations: a library message comes back in German and French, read
// from the catalogues this build compiled (AIOLOOP_LOCALEDIR points the
// library at them), and every message of the template is translated in
// every shipped language with the same printf conversions.
#include <aioloop/aioloop.h>
#include <gtest/gtest.h>

#include <clocale>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

// Set by tests/meson.build: the source po/ directory and the build tree's
// po/ directory, whose <lang>/LC_MESSAGES/aioloop.mo meson compiles.
#ifndef AIOLOOP_TEST_PO_DIR
#error "AIOLOOP_TEST_PO_DIR must name the source po/ directory"
#endif
#ifndef AIOLOOP_TEST_LOCALE_DIR
#error "AIOLOOP_TEST_LOCALE_DIR must name the build tree's compiled catalogues"
#endif

namespace aioloop::testing {
namespace {

const char* const kLanguages[] = {"de", "fr"};

struct Message {
  std::string msgstr;
  bool fuzzy = false;
};

// The C escapes a .po string may hold.
std::string Unescape(const std::string& quoted) {
  std::string out;
  for (size_t i = 1; i + 1 < quoted.size(); ++i) {
    if (quoted[i] != '\\' || i + 2 >= quoted.size()) {
      out += quoted[i];
      continue;
    }
    switch (const char c = quoted[++i]) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      default:
        out += c;  // \" and \\ stand for themselves
    }
  }
  return out;
}

std::string Trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t");
  const size_t end = s.find_last_not_of(" \t\r");
  return begin == std::string::npos ? std::string() : s.substr(begin, end - begin + 1);
}

// msgid -> msgstr of a .po or .pot file (the header entry, msgid "", left
// out). Enough of the format for what xgettext and msgmerge write: no
// plurals or contexts, which this catalogue does not use.
std::map<std::string, Message> ReadCatalogue(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::map<std::string, Message> catalogue;
  std::string msgid, msgstr;
  std::string* current = nullptr;
  bool fuzzy = false;       // of the entry being read
  bool next_fuzzy = false;  // a "#, fuzzy" comment precedes the next msgid
  auto finish = [&] {
    if (!msgid.empty()) catalogue[msgid] = Message{msgstr, fuzzy};
    msgid.clear();
    msgstr.clear();
    current = nullptr;
    fuzzy = false;
  };
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.starts_with("msgid ")) {
      finish();
      fuzzy = next_fuzzy;
      next_fuzzy = false;
      current = &msgid;
      *current = Unescape(Trim(line.substr(6)));
    } else if (line.starts_with("msgstr ")) {
      current = &msgstr;
      *current = Unescape(Trim(line.substr(7)));
    } else if (line.starts_with("\"") && current) {
      *current += Unescape(line);
    } else if (line.starts_with("#,") && line.find("fuzzy") != std::string::npos) {
      next_fuzzy = true;
    } else if (line.empty()) {
      finish();
    }
  }
  finish();
  return catalogue;
}

// The printf conversions of a format, in order ("%s", "%llu", "%.1f", ...):
// flags, width, precision, length modifier, conversion letter. Scanned by
// hand: gcc 12 warns inside <regex> under -O2 with the sanitizers.
std::vector<std::string> Conversions(const std::string& format) {
  std::vector<std::string> found;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') continue;
    size_t end = i + 1;
    auto skip = [&](std::string_view set) {
      while (end < format.size() && set.find(format[end]) != std::string_view::npos) ++end;
    };
    skip("-+ #0");
    skip("0123456789*");
    if (end < format.size() && format[end] == '.') {
      ++end;
      skip("0123456789*");
    }
    skip("hlLzjt");
    if (end < format.size()) {
      found.push_back(format.substr(i, end - i + 1));
      i = end;
    }
  }
  return found;
}

std::string PoPath(const std::string& name) {
  return std::string(AIOLOOP_TEST_PO_DIR) + "/" + name;
}

// A locale in which glibc's gettext honours LANGUAGE: it ignores LANGUAGE
// under "C" and "POSIX", but not under C.UTF-8, which glibc 2.35 and later
// always provide.
std::optional<std::string> UsableLocale() {
  for (const char* name : {"C.UTF-8", "C.utf8", "en_US.UTF-8", "de_DE.UTF-8", "fr_FR.UTF-8"}) {
    if (std::setlocale(LC_ALL, name)) return std::string(name);
  }
  return std::nullopt;
}

class Translation : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    // Before the library's first message: it binds its domain once.
    ::setenv("AIOLOOP_LOCALEDIR", AIOLOOP_TEST_LOCALE_DIR, 0);
  }
  void TearDown() override {
    ::unsetenv("LANGUAGE");
    ::unsetenv("AIOLOOP_BACKEND");
    std::setlocale(LC_ALL, "C");
  }
};

// Issue 6: "a test that runs a message through the translation (e.g. with
// LANGUAGE=de) and checks it came back translated". The message is the
// what() of the aioloop::Error that Context::create() throws for an unknown
// AIOLOOP_BACKEND (DESIGN "Errors and bad input": errno plus a translated
// message).
TEST_P(Translation, LibraryErrorComesBackTranslated) {
  const std::string language = GetParam();
  const std::string msgid = "AIOLOOP_BACKEND=%s is not one of poll, epoll, io_uring";
  const auto catalogue = ReadCatalogue(PoPath(language + ".po"));
  const auto entry = catalogue.find(msgid);
  ASSERT_NE(entry, catalogue.end()) << language << ".po lacks: " << msgid;
  std::string expected = entry->second.msgstr;
  ASSERT_FALSE(expected.empty()) << language << ".po leaves it untranslated: " << msgid;
  ASSERT_NE(expected, msgid);
  expected.replace(expected.find("%s"), 2, "bogus");

  const std::optional<std::string> locale = UsableLocale();
  if (!locale) GTEST_SKIP() << "no locale other than C/POSIX exists, so gettext ignores LANGUAGE";
  // setlocale() after setting LANGUAGE: glibc then drops the translations
  // it cached for the previous language.
  ::setenv("LANGUAGE", language.c_str(), 1);
  std::setlocale(LC_ALL, locale->c_str());
  ::setenv("AIOLOOP_BACKEND", "bogus", 1);
  try {
    auto context = Context::create();
    FAIL() << "Context::create() accepted AIOLOOP_BACKEND=bogus";
  } catch (const Error& e) {
    // what() goes on with ": " and the errno text (glibc's own catalogue).
    EXPECT_EQ(std::string(e.what()).substr(0, expected.size()), expected)
        << "in locale " << *locale << " with LANGUAGE=" << language
        << "; are the .mo files in " AIOLOOP_TEST_LOCALE_DIR "?";
  }
}

// "complete translations of every message in po/": each msgid of the
// template has a msgstr that is not fuzzy, with the same printf
// conversions in the same order (what `msgfmt --check` insists on too).
TEST_P(Translation, EveryTemplateMessageIsTranslated) {
  const std::string language = GetParam();
  const auto templ = ReadCatalogue(PoPath("aioloop.pot"));
  const auto catalogue = ReadCatalogue(PoPath(language + ".po"));
  ASSERT_FALSE(templ.empty());
  for (const auto& [msgid, unused] : templ) {
    const auto entry = catalogue.find(msgid);
    if (entry == catalogue.end() || entry->second.msgstr.empty() || entry->second.fuzzy) {
      ADD_FAILURE() << language << ".po: not translated (run `meson compile aioloop-update-po`, "
                    << "then translate): " << msgid;
      continue;
    }
    EXPECT_EQ(Conversions(entry->second.msgstr), Conversions(msgid))
        << language << ".po: the conversions differ for: " << msgid;
  }
}

// The control: without LANGUAGE, in the C locale, the same error is English,
// so the translated text above came from the catalogue and nowhere else.
TEST(TranslationControl, CLocaleKeepsTheEnglishText) {
  ::setenv("AIOLOOP_LOCALEDIR", AIOLOOP_TEST_LOCALE_DIR, 0);
  std::setlocale(LC_ALL, "C");
  ::setenv("AIOLOOP_BACKEND", "bogus", 1);
  try {
    auto context = Context::create();
    ADD_FAILURE() << "Context::create() accepted AIOLOOP_BACKEND=bogus";
  } catch (const Error& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with(
        "AIOLOOP_BACKEND=bogus is not one of poll, epoll, io_uring"))
        << e.what();
  }
  ::unsetenv("AIOLOOP_BACKEND");
}

INSTANTIATE_TEST_SUITE_P(Languages, Translation, ::testing::ValuesIn(kLanguages),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace aioloop::testing

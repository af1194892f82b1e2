// Every property of every axstream element, through GObject: a new element reads each as its
// pspec's default (what gst-inspect and docs/elements.md show), and a value other than the
// default set on it reads back unchanged.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gst_test_util.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

// The properties `element`'s own type installs (not those of its parent classes).
std::vector<GParamSpec *> own_properties(GstElement *element) {
  guint count = 0;
  GParamSpec **all = g_object_class_list_properties(G_OBJECT_GET_CLASS(element), &count);
  std::vector<GParamSpec *> own;
  for (guint i = 0; i < count; ++i)
    if (all[i]->owner_type == G_OBJECT_TYPE(element)) own.push_back(all[i]);
  g_free(all);
  return own;
}

// The integer next to an integer pspec's default: one above, or one below at the maximum.
template <typename IntegerSpec>
auto next_to_default(const IntegerSpec *spec) {
  return spec->default_value < spec->maximum ? spec->default_value + 1 : spec->default_value - 1;
}

// A valid value of `pspec` other than its default, in `value` (initialised to the pspec's type).
// False for a type this test does not know.
bool other_than_default(GParamSpec *pspec, GValue *value) {
  g_value_init(value, G_PARAM_SPEC_VALUE_TYPE(pspec));
  const GType fundamental = G_TYPE_FUNDAMENTAL(G_PARAM_SPEC_VALUE_TYPE(pspec));
  if (fundamental == G_TYPE_STRING) {
    g_value_set_string(value, "axstream-property-test");
  } else if (fundamental == G_TYPE_BOOLEAN) {
    g_value_set_boolean(value, !G_PARAM_SPEC_BOOLEAN(pspec)->default_value);
  } else if (fundamental == G_TYPE_INT) {
    g_value_set_int(value, next_to_default(G_PARAM_SPEC_INT(pspec)));
  } else if (fundamental == G_TYPE_UINT) {
    g_value_set_uint(value, next_to_default(G_PARAM_SPEC_UINT(pspec)));
  } else if (fundamental == G_TYPE_UINT64) {
    g_value_set_uint64(value, next_to_default(G_PARAM_SPEC_UINT64(pspec)));
  } else if (fundamental == G_TYPE_DOUBLE) {
    auto *spec = G_PARAM_SPEC_DOUBLE(pspec);
    g_value_set_double(value, (spec->default_value + spec->maximum) / 2 != spec->default_value
                                  ? (spec->default_value + spec->maximum) / 2
                                  : (spec->default_value + spec->minimum) / 2);
  } else if (fundamental == G_TYPE_ENUM) {
    auto *spec = G_PARAM_SPEC_ENUM(pspec);
    for (guint i = 0; i < spec->enum_class->n_values; ++i) {
      if (spec->enum_class->values[i].value != spec->default_value) {
        g_value_set_enum(value, spec->enum_class->values[i].value);
        break;
      }
    }
  } else {
    return false;
  }
  return true;
}

std::string text_of(const GValue *value) {
  gchar *text = g_strdup_value_contents(value);
  std::string result = text;
  g_free(text);
  return result;
}

class ElementProperties : public ::testing::TestWithParam<const char *> {
 protected:
  void SetUp() override {
    element_ = gst_element_factory_make(GetParam(), nullptr);
    ASSERT_NE(element_, nullptr) << "no element " << GetParam() << " (GST_PLUGIN_PATH?)";
    gst_object_ref_sink(element_);
  }
  void TearDown() override {
    if (element_) gst_object_unref(element_);
  }
  GstElement *element_ = nullptr;
};

TEST_P(ElementProperties, NewElementReadsEachWritablePropertyAsItsDefault) {
  const auto properties = own_properties(element_);
  ASSERT_FALSE(properties.empty());
  for (GParamSpec *pspec : properties) {
    if (!(pspec->flags & G_PARAM_READABLE) || !(pspec->flags & G_PARAM_WRITABLE)) continue;
    GValue current = G_VALUE_INIT;
    g_value_init(&current, G_PARAM_SPEC_VALUE_TYPE(pspec));
    g_object_get_property(G_OBJECT(element_), pspec->name, &current);
    EXPECT_TRUE(g_param_value_defaults(pspec, &current))
        << GetParam() << "::" << pspec->name << " reads " << text_of(&current)
        << ", its pspec's default is " << text_of(g_param_spec_get_default_value(pspec));
    g_value_unset(&current);
  }
}

TEST_P(ElementProperties, EachWritablePropertyReadsBackWhatWasSet) {
  int checked = 0;
  for (GParamSpec *pspec : own_properties(element_)) {
    if (!(pspec->flags & G_PARAM_READABLE) || !(pspec->flags & G_PARAM_WRITABLE)) continue;
    GValue wanted = G_VALUE_INIT, read = G_VALUE_INIT;
    ASSERT_TRUE(other_than_default(pspec, &wanted))
        << GetParam() << "::" << pspec->name
        << " has a type this test does not cover: " << g_type_name(G_PARAM_SPEC_VALUE_TYPE(pspec));
    ASSERT_FALSE(g_param_value_defaults(pspec, &wanted)) << pspec->name;
    g_object_set_property(G_OBJECT(element_), pspec->name, &wanted);
    g_value_init(&read, G_PARAM_SPEC_VALUE_TYPE(pspec));
    g_object_get_property(G_OBJECT(element_), pspec->name, &read);
    EXPECT_EQ(g_param_values_cmp(pspec, &wanted, &read), 0)
        << GetParam() << "::" << pspec->name << ": set " << text_of(&wanted) << ", read "
        << text_of(&read);
    g_value_unset(&wanted);
    g_value_unset(&read);
    ++checked;
  }
  EXPECT_GT(checked, 0) << GetParam() << " has no writable property";
}

// gst-inspect documents every property: a blurb saying more than the nick.
TEST_P(ElementProperties, EveryPropertyHasABlurbBeyondItsNick) {
  for (GParamSpec *pspec : own_properties(element_)) {
    const std::string blurb = g_param_spec_get_blurb(pspec) ? g_param_spec_get_blurb(pspec) : "";
    EXPECT_GT(blurb.size(), 15u) << GetParam() << "::" << pspec->name << " blurb '" << blurb << "'";
    EXPECT_NE(blurb, g_param_spec_get_nick(pspec)) << GetParam() << "::" << pspec->name;
  }
}

// gst-inspect says in which states each writable property can change ("changeable only in NULL
// or READY state", "changeable in NULL, READY, PAUSED or PLAYING state"); without a
// GST_PARAM_MUTABLE_* flag it says nothing, and the user cannot tell.
TEST_P(ElementProperties, EveryWritablePropertySaysInWhichStatesItCanChange) {
  constexpr GParamFlags kMutable = static_cast<GParamFlags>(
      GST_PARAM_MUTABLE_READY | GST_PARAM_MUTABLE_PAUSED | GST_PARAM_MUTABLE_PLAYING);
  for (GParamSpec *pspec : own_properties(element_))
    if (pspec->flags & G_PARAM_WRITABLE)
      EXPECT_TRUE(pspec->flags & kMutable)
          << GetParam() << "::" << pspec->name << " has no GST_PARAM_MUTABLE_* flag";
}

// docs/design: sink and src of every element accept video/x-raw and video/x-raw(memory:DMABuf).
TEST_P(ElementProperties, BothPadsAcceptSystemMemoryAndDmabufVideo) {
  for (const char *pad_name : {"sink", "src"}) {
    GstPad *pad = gst_element_get_static_pad(element_, pad_name);
    ASSERT_NE(pad, nullptr) << GetParam() << " has no " << pad_name << " pad";
    GstCaps *accepted = gst_pad_get_pad_template_caps(pad);
    for (const char *caps_text :
         {"video/x-raw,format=NV12,width=64,height=48,framerate=30/1",
          "video/x-raw(memory:DMABuf),format=NV12,width=64,height=48,framerate=30/1"}) {
      GstCaps *caps = gst_caps_from_string(caps_text);
      EXPECT_TRUE(gst_caps_can_intersect(caps, accepted))
          << GetParam() << " " << pad_name << " refuses " << caps_text;
      gst_caps_unref(caps);
    }
    gst_caps_unref(accepted);
    gst_object_unref(pad);
  }
}

// The elements that start without a model package, so they can be PLAYING on their own.
class StartableElementProperties : public ElementProperties {};

TEST_P(StartableElementProperties, ReadyOnlyPropertiesAreRefusedWhilePlayingWithAWarning) {
  axtest::BusWatch bus(element_);
  ASSERT_NE(gst_element_set_state(element_, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int checked = 0;
  for (GParamSpec *pspec : own_properties(element_)) {
    if (!(pspec->flags & GST_PARAM_MUTABLE_READY) || !(pspec->flags & G_PARAM_WRITABLE)) continue;
    GValue wanted = G_VALUE_INIT, read = G_VALUE_INIT;
    ASSERT_TRUE(other_than_default(pspec, &wanted)) << pspec->name;
    g_object_set_property(G_OBJECT(element_), pspec->name, &wanted);
    g_value_init(&read, G_PARAM_SPEC_VALUE_TYPE(pspec));
    g_object_get_property(G_OBJECT(element_), pspec->name, &read);
    EXPECT_TRUE(g_param_value_defaults(pspec, &read))
        << GetParam() << "::" << pspec->name << " changed to " << text_of(&read)
        << " while PLAYING";
    const std::string warning = bus.warning();
    EXPECT_NE(warning.find(std::string("property '") + pspec->name +
                           "' can only be changed in the NULL or READY state"),
              std::string::npos)
        << warning;
    g_value_unset(&wanted);
    g_value_unset(&read);
    ++checked;
  }
  EXPECT_GT(checked, 0);
  gst_element_set_state(element_, GST_STATE_NULL);
}

INSTANTIATE_TEST_SUITE_P(Elements, StartableElementProperties,
                         ::testing::Values("axdecode", "axtracker", "axmetapublish"),
                         [](const auto &info) { return std::string(info.param); });

INSTANTIATE_TEST_SUITE_P(Elements, ElementProperties,
                         ::testing::Values("axpreprocess", "axinference", "axdecode", "axoverlay",
                                           "axmetapublish", "axtracker", "axfpscounter"),
                         [](const auto &info) { return std::string(info.param); });

}  // namespace

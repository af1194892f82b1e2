// Element properties that are plain fields of the instance struct: each element lists its
// property ids with the field each is kept in, and one set/get/free serves them all, so an
// element writes a get_property of its own only for properties that are computed.
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <variant>

namespace axstream::gst {

// Property `id` is kept in `field` of `Instance`: a gchar * (owned) for a string property, a
// gint for an int, boolean or enum, a guint for a uint, a gdouble for a double. A field that
// does not hold its pspec's type makes GLib's g_value_get/set_* report a critical.
template <typename Instance>
struct FieldProperty {
  guint id;
  std::variant<gchar * Instance::*, gint Instance::*, guint Instance::*, gdouble Instance::*> field;
};

namespace field_property_detail {

inline void set(gchar *&field, const GValue *value) {
  g_free(field);
  field = g_value_dup_string(value);
}
inline void set(gint &field, const GValue *value) {
  if (G_VALUE_HOLDS_BOOLEAN(value))
    field = g_value_get_boolean(value);
  else if (G_VALUE_HOLDS_ENUM(value))
    field = g_value_get_enum(value);
  else
    field = g_value_get_int(value);
}
inline void set(guint &field, const GValue *value) { field = g_value_get_uint(value); }
inline void set(gdouble &field, const GValue *value) { field = g_value_get_double(value); }

inline void get(const gchar *field, GValue *value) { g_value_set_string(value, field); }
inline void get(gint field, GValue *value) {
  if (G_VALUE_HOLDS_BOOLEAN(value))
    g_value_set_boolean(value, field);
  else if (G_VALUE_HOLDS_ENUM(value))
    g_value_set_enum(value, field);
  else
    g_value_set_int(value, field);
}
inline void get(guint field, GValue *value) { g_value_set_uint(value, field); }
inline void get(gdouble field, GValue *value) { g_value_set_double(value, field); }

template <typename Instance, std::size_t N>
const FieldProperty<Instance> *find(const FieldProperty<Instance> (&fields)[N], guint id) {
  for (const FieldProperty<Instance> &property : fields)
    if (property.id == id) return &property;
  return nullptr;
}

}  // namespace field_property_detail

// Sets the field of property `id` from `value`. False when `id` is not one of `fields`.
template <typename Instance, std::size_t N>
bool set_field_property(Instance *self, const FieldProperty<Instance> (&fields)[N], guint id,
                        const GValue *value) {
  const FieldProperty<Instance> *property = field_property_detail::find(fields, id);
  if (!property) return false;
  std::visit([&](auto field) { field_property_detail::set(self->*field, value); }, property->field);
  return true;
}

// Reads the field of property `id` into `value`. False when `id` is not one of `fields`.
template <typename Instance, std::size_t N>
bool get_field_property(const Instance *self, const FieldProperty<Instance> (&fields)[N], guint id,
                        GValue *value) {
  const FieldProperty<Instance> *property = field_property_detail::find(fields, id);
  if (!property) return false;
  std::visit([&](auto field) { field_property_detail::get(self->*field, value); }, property->field);
  return true;
}

// A set_property for an element whose writable properties are all in `fields` (a
// static constexpr array): each is written under the object lock, as streaming threads read
// them under it. A property flagged GST_PARAM_MUTABLE_READY is taken up at start and read by the
// streaming threads as it is, so a change while PAUSED or PLAYING is refused with a warning on
// the bus (as filesrc refuses a new location while a file is open); a string freed under a
// running element would be a use after free. Assign it as gobject_class->set_property.
template <typename Instance, const auto &fields>
void set_field_properties(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  // GObject calls it on an instance of the class it was installed on: the cast holds.
  auto *self = reinterpret_cast<Instance *>(object);
  GST_OBJECT_LOCK(self);
  const GstState state = GST_STATE(self);
  if ((pspec->flags & GST_PARAM_MUTABLE_READY) && state > GST_STATE_READY) {
    GST_OBJECT_UNLOCK(self);
    GST_ELEMENT_WARNING(
        self, CORE, STATE_CHANGE,
        ("property '%s' can only be changed in the NULL or READY state: the new "
         "value is ignored",
         pspec->name),
        ("set_property '%s' while %s", pspec->name, gst_element_state_get_name(state)));
    return;
  }
  const bool known = set_field_property(self, fields, id, value);
  GST_OBJECT_UNLOCK(self);
  if (!known) G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
}

// The get_property to go with it, for an element with no computed properties.
template <typename Instance, const auto &fields>
void get_field_properties(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  auto *self = reinterpret_cast<Instance *>(object);
  GST_OBJECT_LOCK(self);
  const bool known = get_field_property(self, fields, id, value);
  GST_OBJECT_UNLOCK(self);
  if (!known) G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
}

// Frees the strings of the string properties in `fields` (for finalize).
template <typename Instance, std::size_t N>
void free_field_properties(Instance *self, const FieldProperty<Instance> (&fields)[N]) {
  for (const FieldProperty<Instance> &property : fields) {
    if (auto *string = std::get_if<gchar * Instance::*>(&property.field)) {
      g_free(self->**string);
      self->**string = nullptr;
    }
  }
}

}  // namespace axstream::gst

// A small text button in a message's action row.
import QtQuick
import QtQuick.Controls.Basic

Button {
    id: button
    flat: true
    padding: 4
    leftPadding: 8
    rightPadding: 8
    font.pixelSize: 12
    Accessible.name: text
    Accessible.ignored: !visible
    contentItem: Text {
        text: button.text
        font: button.font
        color: button.enabled ? root.accent : root.mutedColor
        horizontalAlignment: Text.AlignHCenter
        verticalAlignment: Text.AlignVCenter
    }
    background: Rectangle {
        radius: 5
        color: button.down ? root.selectedTint : (button.hovered || button.activeFocus ? Qt.alpha(root.selectedTint, 0.6) : "transparent")
        border.width: button.activeFocus ? 1 : 0
        border.color: root.accent
    }
}

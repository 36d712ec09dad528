// One message: who wrote it, its text (an answer as rendered Markdown, live while it streams),
// its figures, and its actions (shown on hover or keyboard focus).
import QtQuick

FocusScope {
    id: message
    required property int index
    required property string messageId
    required property string who
    required property bool isUser
    required property string body
    required property string plain
    required property string stats
    required property string mark
    required property int version
    required property int versions
    required property bool canContinue
    required property bool canRetry
    required property bool streaming
    required property string tail
    required property string liveRate
    required property int codeBlocks

    property bool editing: false
    readonly property bool showActions: hover.hovered || message.activeFocus || editing

    objectName: "message:" + messageId
    width: ListView.view.width
    height: bubble.height + 38
    activeFocusOnTab: true
    focus: ListView.isCurrentItem  // the keyboard's place in the list (Up, Down)

    Accessible.role: Accessible.ListItem
    Accessible.name: (isUser ? "You said: " : "Assistant said: ")
                     + (streaming ? "writing…" : bodyText.getText(0, bodyText.length))
    Accessible.description: [stats, mark, liveRate].filter(s => s.length > 0).join(", ")

    // The plain-text offset of `needle` in the shown body, selected (a search hit).
    function selectText(needle) {
        const shown = bodyText.getText(0, bodyText.length)
        const at = shown.toLowerCase().indexOf(needle.toLowerCase())
        if (at < 0)
            return false
        bodyText.forceActiveFocus()
        bodyText.select(at, at + needle.length)
        return true
    }
    // [row, text position, on the text] for a point of the scene (Transcript.textPositionAt):
    // above the text counts as its start, below it as its end.
    function textPositionAt(sceneX, sceneY) {
        if (!bodyText.visible)
            return [index, -1, false]
        const p = bodyText.mapFromItem(null, sceneX, sceneY)
        const on = p.x >= 0 && p.y >= 0 && p.x <= bodyText.width && p.y <= bodyText.height
        const position = p.y < 0 ? 0 : p.y > bodyText.height ? bodyText.length : bodyText.positionAt(p.x, p.y)
        return [index, position, on]
    }
    function placeCursor(position) {
        bodyText.select(position, position)
    }
    // This message's part of a selection dragged across messages, if any.
    property bool showsSpan: false
    function showSpan() {
        if (bodyText.visible && root.spanFirstRow >= 0 && index >= root.spanFirstRow && index <= root.spanLastRow) {
            bodyText.select(index === root.spanFirstRow ? root.spanFirstPos : 0,
                            index === root.spanLastRow ? root.spanLastPos : bodyText.length)
            showsSpan = true
        } else if (showsSpan) {
            bodyText.deselect()
            showsSpan = false
        }
    }
    Connections {
        target: root
        function onSpanChanged() { message.showSpan() }
    }
    function startEditing() {
        editing = true
        editor.text = plain
        editor.forceActiveFocus()
        editor.cursorPosition = editor.length
    }
    function stopEditing() {
        editing = false
        delete root.drafts[messageId]
    }
    Component.onCompleted: {
        showSpan()
        const draft = root.drafts[messageId]
        if (isUser && draft !== undefined) {
            editing = true
            editor.text = draft
        }
    }

    HoverHandler { id: hover }

    Rectangle {
        id: bubble
        readonly property real column: Math.min(root.readingWidth, message.width - 32)
        width: isUser && !editing ? Math.min(column, Math.max(content.naturalWidth, header.implicitWidth) + 28) : column
        height: content.implicitHeight + 20
        // The reading column is centred; a user's message sits at its right edge, in a bubble.
        x: (message.width - column) / 2 + (column - width)
        y: 6
        radius: 12
        color: root.allSelected ? root.selectedTint : (isUser ? root.userBubble : "transparent")

        Column {
            id: content
            // The widest a user's text wants to be, for a bubble that hugs short messages.
            readonly property real naturalWidth: isUser ? Math.min(bodyMetrics.advanceWidth, bubble.column) : bubble.column
            x: 14
            y: 10
            width: bubble.width - 28
            spacing: 6

            TextMetrics { id: bodyMetrics; text: isUser ? plain : ""; font: bodyText.font }

            Row {
                id: header
                spacing: 8
                Text {
                    text: who
                    font.bold: true
                    color: root.textColor
                }
                Text {
                    visible: text.length > 0
                    text: [stats, mark, liveRate].filter(s => s.length > 0).join("  ·  ")
                    color: mark === "failed" || mark === "not answered" ? "#cf222e" : root.mutedColor
                    font.pixelSize: 12
                    anchors.verticalCenter: parent.verticalCenter
                }
            }

            TextEdit {
                id: bodyText
                objectName: "body"
                visible: !streaming && !editing
                width: parent.width
                text: streaming ? "" : body
                textFormat: isUser ? TextEdit.PlainText : TextEdit.RichText
                wrapMode: TextEdit.Wrap
                readOnly: true
                selectByMouse: true
                color: root.textColor
                selectionColor: root.selectedTint
                selectedTextColor: root.textColor
                Accessible.role: Accessible.StaticText
                Accessible.name: getText(0, length)
                onLinkActivated: url => root.link(messageId, url)
                HoverHandler { cursorShape: parent.hoveredLink ? Qt.PointingHandCursor : Qt.IBeamCursor }
            }

            // The answer being written: finished blocks, each laid out once, then the tail.
            Repeater {
                model: streaming ? streamPieces : null
                delegate: TextEdit {
                    required property string html
                    objectName: "piece"
                    width: content.width
                    text: html
                    textFormat: TextEdit.RichText
                    wrapMode: TextEdit.Wrap
                    readOnly: true
                    selectByMouse: true
                    color: root.textColor
                    selectionColor: root.selectedTint
                    selectedTextColor: root.textColor
                    onLinkActivated: url => root.link("", url)
                }
            }
            TextEdit {
                objectName: "tail"
                visible: streaming
                width: parent.width
                text: tail
                textFormat: TextEdit.RichText
                wrapMode: TextEdit.Wrap
                readOnly: true
                selectByMouse: true
                color: root.textColor
                selectionColor: root.selectedTint
                selectedTextColor: root.textColor
                onLinkActivated: url => root.link("", url)
            }

            // Edit in place: the message's text, then Save (Ctrl+Return) or Cancel (Esc).
            Rectangle {
                visible: editing
                width: parent.width
                height: visible ? Math.max(60, editor.implicitHeight + 16) : 0
                radius: 6
                color: systemPalette.base
                border.color: root.accent
                border.width: 1
                TextEdit {
                    id: editor
                    objectName: "editor"
                    x: 8; y: 8
                    width: parent.width - 16
                    wrapMode: TextEdit.Wrap
                    textFormat: TextEdit.PlainText
                    selectByMouse: true
                    color: root.textColor
                    Accessible.ignored: !editing
                    Accessible.role: Accessible.EditableText
                    Accessible.name: "Edit your message"
                    Keys.onReturnPressed: event => {
                        if (event.modifiers & (Qt.ControlModifier | Qt.MetaModifier)) saveButton.clicked()
                        else event.accepted = false
                    }
                    Keys.onEscapePressed: cancelButton.clicked()
                    onTextChanged: if (message.editing) root.drafts[messageId] = text
                }
            }
            Row {
                visible: editing
                spacing: 4
                ActionButton {
                    id: saveButton
                    objectName: "save"
                    text: "Save and send"
                    Accessible.ignored: !editing
                    onClicked: {
                        const text = editor.text
                        message.stopEditing()
                        root.editSubmitted(messageId, text)
                    }
                }
                ActionButton {
                    id: cancelButton
                    objectName: "cancel"
                    text: "Cancel"
                    Accessible.ignored: !editing
                    onClicked: message.stopEditing()
                }
            }
        }
    }

    Row {
        id: bar
        spacing: 6
        y: bubble.y + bubble.height + 2
        x: isUser ? bubble.x + bubble.width - width : bubble.x + 8
        height: 26
        // Branches: ‹ 2/3 ›, always shown when there are several versions.
        Row {
            visible: versions > 1 && !streaming
            spacing: 0
            ActionButton {
                objectName: "prev"
                text: "‹"
                enabled: version > 1
                Accessible.name: "Previous version"
                onClicked: root.action("prev", messageId, 0)
            }
            Text {
                objectName: "branch"
                text: version + "/" + versions
                color: root.mutedColor
                font.pixelSize: 12
                anchors.verticalCenter: parent.verticalCenter
                Accessible.name: "Version " + version + " of " + versions
                Accessible.ignored: versions < 2
            }
            ActionButton {
                objectName: "next"
                text: "›"
                enabled: version < versions
                Accessible.name: "Next version"
                onClicked: root.action("next", messageId, 0)
            }
        }
        // Actions: shown on hover or focus; always there for a screen reader and the keyboard.
        Row {
            id: actions
            objectName: "actions"
            visible: !streaming && !editing
            spacing: 2
            opacity: message.showActions || canRetry ? 1 : 0  // Retry waits in plain sight
            ActionButton {
                objectName: "copy"
                text: "Copy"
                Accessible.name: "Copy message"
                onClicked: root.action("copy", messageId, 0)
            }
            ActionButton {
                objectName: "edit"
                visible: isUser
                text: "Edit"
                Accessible.name: "Edit message"
                onClicked: message.startEditing()
            }
            ActionButton {
                objectName: "retry"
                visible: canRetry
                text: "Retry"
                Accessible.name: "Answer this message"
                onClicked: root.action("retry", messageId, 0)
            }
            // A Copy button for each code block, also for the keyboard and screen readers (the
            // "Copy" above each block in the text is a link, which neither can reach).
            Repeater {
                model: codeBlocks
                delegate: ActionButton {
                    required property int index
                    objectName: "copyCode" + index
                    text: codeBlocks > 1 ? "Copy code " + (index + 1) : "Copy code"
                    onClicked: root.action("code", messageId, index)
                }
            }
            ActionButton {
                objectName: "regenerate"
                visible: !isUser
                text: "Regenerate"
                Accessible.name: "Regenerate answer"
                onClicked: root.action("regenerate", messageId, 0)
            }
            ActionButton {
                objectName: "continue"
                visible: canContinue
                text: "Continue"
                Accessible.name: "Continue answer"
                onClicked: root.action("continue", messageId, 0)
            }
        }
    }
}
